# Stand-in for tyro.cli (not installable here): --field value overrides on the dataclass defaults.
import sys, dataclasses
def cli(cls):
    a = cls(); argv = sys.argv[1:]
    for i in range(0, len(argv), 2):
        k = argv[i].lstrip('-').replace('-', '_'); f = type(getattr(a, k))
        setattr(a, k, (argv[i+1].lower() == 'true') if f is bool else f(argv[i+1]))
    return a
