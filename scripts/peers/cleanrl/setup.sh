#!/usr/bin/env bash
# Builds a folder that runs CleanRL's ppo.py side by side with `dotnet fsi scripts/bench.fsx ppo-cartpole`
# and the ppo (Pendulum) and dqn sections (set RL_CLEANRL_DIR to the folder). Peer code is not kept in this repository; this script assembles it:
#
#   bash scripts/peers/cleanrl/setup.sh <Gymnasium git dir> <cleanrl git dir> <dest>
#
# <Gymnasium git dir>: a clone of github.com/Farama-Foundation/Gymnasium (its tag v0.29.1 is CleanRL's pin);
# <cleanrl git dir>: a clone of github.com/vwxyzjn/cleanrl (ppo.py, ppo_continuous_action.py, dqn.py and
# cleanrl_utils/buffers.py at HEAD).
# Python: Debian's python3 with python3-torch (1.13.1, as in docs/peers.md), python3-numpy,
# python3-cloudpickle and python3-typing-extensions (apt-get install -y ...). tyro and tensorboard are not
# packaged there: tyro.py parses `--key value` overrides and tbstub.py replaces SummaryWriter (it keeps
# the episodic returns in memory and prints the last-20 mean at the end); the scripts are otherwise unmodified.
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 <Gymnasium git dir> <cleanrl git dir> <dest>" >&2
  exit 2
fi
gym=$1 clean=$2 dest=$3
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dest"
# the subtree alone (a mirror may lack blobs elsewhere in the tree, which a pathspec archive still reads)
git -C "$gym" archive --prefix=gymnasium/ v0.29.1:gymnasium | tar -x -C "$dest"
for script in ppo ppo_continuous_action dqn; do
  git -C "$clean" show "HEAD:cleanrl/$script.py" |
    sed 's/^from torch.utils.tensorboard import SummaryWriter/from tbstub import SummaryWriter/' >"$dest/$script.py"
  grep -q '^from tbstub import SummaryWriter' "$dest/$script.py" ||
    { echo "$script.py: the SummaryWriter import was not found" >&2; exit 1; }
done
mkdir -p "$dest/cleanrl_utils"
for f in __init__ buffers; do git -C "$clean" show "HEAD:cleanrl_utils/$f.py" >"$dest/cleanrl_utils/$f.py"; done
cp "$here/tyro.py" "$here/tbstub.py" "$dest/"
echo "CleanRL ready in $dest: RL_CLEANRL_DIR=$dest dotnet fsi scripts/bench.fsx ppo-cartpole (also ppo, dqn)"
