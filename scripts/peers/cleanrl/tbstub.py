# Stand-in for torch.utils.tensorboard.SummaryWriter (tensorboard not installable here): keeps
# episodic returns in memory, prints one line per finished episode
# ("episode <seconds since the writer was made> <global_step> <return>", which `bench.fsx solve`
# reads for CleanRL's time to the bar) and the mean of the last 20 at close.
import time


class SummaryWriter:
    def __init__(self, *a, **k):
        self.returns = []
        self.t0 = time.time()

    def add_text(self, *a, **k): pass

    def add_scalar(self, tag, value, step):
        if tag == "charts/episodic_return":
            self.returns.append(float(value))
            print("episode %.3f %d %r" % (time.time() - self.t0, step, float(value)))

    def close(self):
        r = self.returns[-20:]
        print("episodes", len(self.returns), "last-20 mean return", sum(r) / max(1, len(r)))
