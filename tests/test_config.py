# Settings: one declaration, read from a YAML file, the environment and the command line, in that
# order of precedence, with errors that name the setting and where it came from.
import argparse

import pytest

from scailfin_exec.config import ConfigError, Settings, add_arguments, load_settings

pytestmark = pytest.mark.fast


def parse(argv, environ=None, config_file=None):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return load_settings(parser.parse_args(argv), environ or {}, config_file)


def test_defaults():
    s = parse([])
    assert (s.scheduler, s.transfer, s.runtime, s.pull, s.explicit) == ("local", "shared", [], True, set())


def test_runtime_preference_from_file_then_environment_then_command_line(tmp_path):
    cfg = tmp_path / "site.yaml"
    cfg.write_text("runtime: [apptainer, charliecloud]\nimage_roots: [/cvmfs/unpacked.cern.ch]\n"
                   "runtime_options:\n  podman: [--runtime, runc]\npull: false\n")
    assert parse(["--config", str(cfg)]).runtime == ["apptainer", "charliecloud"]
    env = {"SCAILFIN_RUNTIME": "podman,charliecloud"}
    assert parse(["--config", str(cfg)], env).runtime == ["podman", "charliecloud"]
    both = parse(["--config", str(cfg), "--runtime", "shifter"], env)
    assert both.runtime == ["shifter"]
    assert both.image_roots == ["/cvmfs/unpacked.cern.ch"] and both.pull is False
    assert both.runtime_options == {"podman": ["--runtime", "runc"]}
    assert both.explicit == {"runtime", "image_roots", "runtime_options", "pull"}


def test_config_file_from_the_environment(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("scheduler: htcondor\ntransfer: htcondor\naccounting_group: group_physics\n")
    settings = parse([], {"SCAILFIN_CONFIG": str(cfg)})
    assert settings.transfer == "htcondor" and settings.of("htcondor").accounting_group == "group_physics"


def test_a_transfer_mode_the_scheduler_does_not_take_is_refused_saying_what_would_work():
    with pytest.raises(ConfigError) as info:
        parse(["--transfer", "htcondor"])  # the local scheduler
    assert str(info.value) == ("transfer: the local scheduler cannot use transfer mode 'htcondor' (it takes shared); "
                               "what would work: scheduler: local with transfer: shared; "
                               "scheduler: htcondor with transfer: htcondor")
    assert parse(["--scheduler", "htcondor", "--transfer", "chirp"]).transfer == "chirp"


def test_each_scheduler_declares_its_own_settings_which_the_command_line_shows_in_a_group_of_its_own():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    titles = [group.title for group in parser._action_groups]
    assert "htcondor scheduler options (an HTCondor pool, through the htcondor2 bindings)" in titles
    settings = parse(["--scheduler", "htcondor", "--pool", "cm.example:9618", "--max-retries", "5"])
    options = settings.of("htcondor")
    assert (options.pool, options.max_retries) == ("cm.example:9618", 5) and settings.explicit >= {"pool", "max_retries"}


def test_auto_means_the_default_order():
    assert parse(["--runtime", "auto"]).runtime == []


@pytest.mark.parametrize("argv, environ, message", [
    (["--runtime", "podman,dockr"], {}, "runtime: unknown runtime 'dockr'"),
    (["--transfer", "ftp"], {}, "transfer: unknown transfer mode 'ftp'"),
    (["--scheduler", "pbs"], {}, "scheduler: unknown scheduler 'pbs' (known: local, htcondor, slurm)"),
    (["--scheduler", "htcondor", "--accounting-group", "g$ENV(X)"], {}, "accounting_group: 'g$ENV(X)' is not a group name"),
    (["--scheduler", "htcondor"], {"SCAILFIN_MAX_RETRIES": "-1"}, "max_retries: must be at least 0, got -1"),
    (["--scheduler", "htcondor", "--job-lease", "5"], {}, "job_lease: must be at least 20 s"),
    ([], {"SCAILFIN_PULL": "maybe"}, "pull (from $SCAILFIN_PULL): expected yes or no, got 'maybe'"),
    ([], {"SCAILFIN_MAX_PARALLEL": "many"}, "max_parallel (from $SCAILFIN_MAX_PARALLEL)"),
    (["--image-roots", "relative/dir"], {}, "image_roots: 'relative/dir' must be an absolute path"),
])
def test_bad_values_are_named_with_their_source(argv, environ, message):
    with pytest.raises(ConfigError) as info:
        parse(argv, environ)
    assert message in str(info.value)


def test_unknown_keys_in_the_file_are_refused(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("runtimes: [podman]\n")
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) runtimes"):
        parse(["--config", str(cfg)])


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="config file .*missing.yaml: No such file"):
        parse(["--config", str(tmp_path / "missing.yaml")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("runtime: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse(["--config", str(bad)])


def test_every_setting_has_help_text():
    from scailfin_exec.schedulers import SCHEDULERS, scheduler_class

    declared = list(Settings.__dataclass_fields__.items())
    for name in SCHEDULERS:
        cls = scheduler_class(name).options_class
        declared += list(cls.__dataclass_fields__.items()) if cls else []
    for name, f in declared:
        if not f.metadata.get("internal"):
            assert len(f.metadata["help"]) > 20, name
