# The test site lives in a network namespace of its own: its daemons cannot meet another HTCondor
# (or Slurm) on this host, and the pool the tests reach is the one this start made.
import os

import htcondor2

SITE = os.path.dirname(os.environ["CONDOR_CONFIG"])


def read(name):
    with open(os.path.join(SITE, name)) as f:
        return f.read().strip()


def test_the_tests_run_in_the_sites_network_namespace_not_the_hosts(pool):
    here = os.readlink("/proc/self/ns/net")
    assert here == read("netns") and here != read("host-netns")


def test_the_pool_that_answers_is_the_one_this_start_made(pool):
    [master] = htcondor2.Collector().query(htcondor2.AdType.Master, projection=["ScailfinSite"])
    assert master["ScailfinSite"] == read("site-id")
