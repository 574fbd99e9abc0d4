# Settings: one declaration, read from a YAML file, the environment and the command line, in that
# order of precedence, with errors that name the setting and where it came from.
import argparse

import pytest

from scailfin_exec.config import ConfigError, Settings, add_arguments, load_settings


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
    cfg.write_text("transfer: htcondor\n")
    assert parse([], {"SCAILFIN_CONFIG": str(cfg)}).transfer == "htcondor"


def test_auto_means_the_default_order():
    assert parse(["--runtime", "auto"]).runtime == []


@pytest.mark.parametrize("argv, environ, message", [
    (["--runtime", "podman,dockr"], {}, "runtime: unknown runtime 'dockr'"),
    (["--transfer", "ftp"], {}, "transfer: unknown transfer mode 'ftp'"),
    (["--scheduler", "slurm"], {}, "scheduler: unknown scheduler 'slurm' (known: local, htcondor)"),
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
    for name, f in Settings.__dataclass_fields__.items():
        if not f.metadata.get("internal"):
            assert len(f.metadata["help"]) > 20, name
