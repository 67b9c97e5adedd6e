"""A plugin policy for tests/test_batch_plugin.py, loaded with `cachesim --plugin
tests.batch_fifo_plugin`: "fillfifo", FIFO in access mode (the fifo kernel) and, in batch mode,
FIFO by fill stamp: a set's lines are taken oldest fill first and a hit does not restamp its
line (tests/naive.py's batch_replay with policy "fifo"); with ways in access mode, FIFO in each
set (set_rule "fifo"). Its device state: one int32 fill stamp per line."""
from cachesim.policies import BatchRule, Policy, get_policy, register

NAME = "fillfifo"
STAMP_BYTES = 4

_fifo = get_policy("fifo")
POLICY = register(Policy(name=NAME, kernel=_fifo.kernel, init=_fifo.init,
                         description="first in, first out; in batch mode by fill stamp",
                         batch_rule=BatchRule(order="stamp", stamp_on_hit=False),
                         policy_state_bytes=lambda lines, total_rows: STAMP_BYTES * lines,
                         set_rule="fifo"),
                  replace=True)
