# The pilots' batch script and HTCondor configuration, and the elastic rule, as pure functions
# (no cluster): the token travels as a file only, a node without a runtime takes no step, Slurm's
# TERM becomes a fast shutdown, and pilots grow with the idle jobs within their bounds.
import pytest

from scailfin_exec.config import ConfigError, load_group, load_settings
from scailfin_exec.pilots.command import wanted
from scailfin_exec.pilots.script import Pilot, batch_script, condor_config
from scailfin_exec.pilots.settings import PilotSettings

pytestmark = pytest.mark.fast

PILOT = Pilot(pool="cm.example.org:9618", directory="/scratch/u/pilots", token_file="/scratch/u/pilots/token",
              shim="/scratch/u/pilots/shim.pyz", idle_s=120)


def test_the_configuration_names_the_token_directory_never_the_token():
    config = condor_config(PILOT)
    assert "SEC_TOKEN_DIRECTORY = $(LOCAL_DIR)/tokens.d" in config and "/scratch/u/pilots/token" not in config
    assert "SEC_DEFAULT_AUTHENTICATION_METHODS = IDTOKENS" in config
    assert "CONDOR_HOST = cm.example.org:9618" in config and "STARTD_NOCLAIM_SHUTDOWN = 120" in config
    assert 'START = ScailfinRuntimes =!= ""' in config.splitlines()  # a node without a runtime takes no step
    assert "SLOT_TYPE_1_PARTITIONABLE = True" in config
    assert "use feature : GPUs" in config.splitlines()  # the GPUs Slurm gave the pilot (CUDA_VISIBLE_DEVICES)


def test_the_batch_script_copies_the_token_privately_and_turns_slurms_term_into_a_fast_shutdown():
    script = batch_script(PILOT, "/scratch/u/pilots/condor_config")
    assert script.startswith("#!/bin/sh\n#SBATCH --signal=B:TERM@120\n#SBATCH --chdir=/scratch/u/pilots\n")
    assert "umask 077" in script and "cp /scratch/u/pilots/token \"$PILOT_DIR/tokens.d/pilot\"" in script
    assert "trap 'kill -QUIT $master 2>/dev/null' TERM INT" in script
    assert "cat " not in script.split("tokens.d/pilot")[1]  # the token is never printed


@pytest.mark.parametrize("idle,live,cpus,minimum,maximum,more", [
    (0, 0, 1, 0, 10, 0),      # nothing to do: no pilot
    (24, 0, 2, 0, 10, 10),    # a 24-way scatter on 2-CPU pilots: 12 wanted, 10 at most
    (24, 3, 8, 0, 10, 0),     # 3 pilots of 8 CPUs are enough
    (5, 1, 2, 0, 10, 2),      # 3 wanted, 1 there
    (0, 0, 1, 2, 10, 2),      # the minimum is kept even when idle
])
def test_pilots_grow_with_the_idle_jobs_within_their_bounds(idle, live, cpus, minimum, maximum, more):
    assert wanted(idle, live, PilotSettings(cpus=cpus, min=minimum, max=maximum)) == more


def test_a_pilot_from_a_tarball_unpacks_it_into_its_scratch_and_runs_its_condor_master():
    script = batch_script(Pilot(pool="cm:9618", directory="/d", token_file="/d/token", shim="/d/shim.pyz",
                                condor_tarball="/scratch/u/condor 25.tar.gz"), "/d/condor_config")
    assert "tar -xf '/scratch/u/condor 25.tar.gz' -C \"$PILOT_DIR/condor\"" in script
    assert script.index("PILOT_SBIN=$(dirname") > script.index("PILOT_SBIN=/usr/sbin")  # the tarball's wins
    assert '"$PILOT_SBIN/condor_master" -f &' in script
    assert "SBIN = $ENV(PILOT_SBIN)" in condor_config(PILOT)


def test_pilot_sizes_come_from_the_config_file_then_the_environment_then_the_command_line(tmp_path):
    config = tmp_path / "scailfin.yml"
    config.write_text("scheduler: htcondor\npilots:\n  cpus: 8\n  memory: 16000\n  max: 20\n  idle-time: 60\n")
    settings = load_settings(None, environ={}, config_file=str(config))

    class Args:
        scailfin_memory = "32000"

    pilots = load_group(PilotSettings, settings.pilots, "pilots", Args(), environ={"SCAILFIN_PILOT_MAX": "30"})
    assert (pilots.cpus, pilots.memory, pilots.max, pilots.idle_time, pilots.min) == (8, 32000, 30, 60, 0)


@pytest.mark.parametrize("mapping,error", [
    ({"cpu": 4}, "pilots: unknown setting(s) cpu (known: "),
    ({"min": 5, "max": 2}, "min 5 and max 2: need 0 <= min <= max"),
    ({"cpus": "many"}, "cpus (from pilots): invalid literal"),
    ({"condor_tarball": "/nonexistent.tar.gz"}, "condor_tarball: no such file '/nonexistent.tar.gz'"),
])
def test_bad_pilot_settings_are_named(mapping, error):
    with pytest.raises(ConfigError) as info:
        load_group(PilotSettings, mapping, "pilots", None, environ={})
    assert str(info.value).startswith(error), str(info.value)
