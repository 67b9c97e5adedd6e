"""The policy registry imports a built-in policy's module only when it is first asked for."""
import subprocess
import sys

CHECK = r"""
import sys
import cachesim.policies as P
from cachesim.policies import get_policy
mods = lambda: sorted(m.rsplit('.', 1)[1] for m in sys.modules
                      if m.startswith('cachesim.policies.') and m.rsplit('.', 1)[1] in
                      {'lru', 'fifo', 'lfu', 'clock', 'random_policy', 'opt', 'sieve', 'arc',
                       's3fifo'})
print(mods())
get_policy('lru'); print(mods())
print(get_policy('least-recently-used').name, get_policy('second-chance').name)
print(mods() == sorted(P.BUILTIN.values()))
print(P.batch_policy_names()[:2], list(P.all_policies())[:3])
"""


def test_a_command_pays_only_for_the_policies_it_runs():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0] == "[]"          # importing the registry imports no policy
    assert out[1] == "['lru']"     # asking for lru imports lru alone
    assert out[2] == "lru clock"   # an alias finds its built-in (importing them all)
    assert out[3] == "True"
    assert out[4] == "['lru', 'lfu'] ['lru', 'fifo', 'lfu']"  # the listing order is fixed


def test_a_plugin_cannot_take_a_built_in_name_before_the_built_in_loads():
    code = ("import numpy as np\nfrom cachesim.policies import Policy, register\n"
            "try:\n    register(Policy(name='arc', kernel=print, init=print))\n"
            "except ValueError as e:\n    print('refused', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("refused policy 'arc' is already registered")
