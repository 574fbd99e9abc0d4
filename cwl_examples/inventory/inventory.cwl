#!/usr/bin/env scailfin-cwl
# One tool using a Directory input, InitialWorkDirRequirement, EnvVarRequirement,
# ResourceRequirement and captured stdout/stderr, on docker.io/library/debian:stable-slim.
cwlVersion: v1.2
class: CommandLineTool
doc: Inventory a directory of data files, with a run card staged next to it.
requirements:
  DockerRequirement:
    dockerPull: docker.io/library/debian:stable-slim
  InitialWorkDirRequirement:
    listing:
      - entry: $(inputs.data)
      - entryname: runcard.ini
        entry: |
          [inventory]
          label = $(inputs.label)
  EnvVarRequirement:
    envDef:
      INVENTORY_LABEL: $(inputs.label)
  ResourceRequirement:
    coresMin: 1
    ramMin: 128
  ShellCommandRequirement: {}
inputs:
  data: Directory
  label: string
arguments:
  - shellQuote: false
    valueFrom: >
      echo "inventory $INVENTORY_LABEL (cores: $(runtime.cores), ram: $(runtime.ram) MiB)";
      grep '^label' runcard.ini;
      find $(inputs.data.basename) -type f | sort | while read -r f; do
      echo "`wc -c < "$f"` $f"; done;
      mkdir -p summary && find $(inputs.data.basename) -type f | wc -l > summary/files.txt;
      echo "checked `cat summary/files.txt` files" >&2
stdout: inventory.txt
stderr: inventory.log
outputs:
  report:
    type: stdout
  log:
    type: stderr
  summary:
    type: Directory
    outputBinding:
      glob: summary
