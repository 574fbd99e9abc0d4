cwlVersion: v1.2
class: Workflow
doc: One step that exits 1, one whose image does not exist, one that works (run with --on-error continue).
inputs: []
outputs: []
steps:
  breaks:
    in: []
    out: []
    run:
      class: CommandLineTool
      requirements:
        DockerRequirement: {dockerPull: docker.io/library/alpine}
      baseCommand: [sh, -c, "echo the calibration is missing >&2; exit 1"]
      inputs: []
      outputs: []
  no_image:
    in: []
    out: []
    run:
      class: CommandLineTool
      requirements:
        DockerRequirement: {dockerPull: docker.io/library/no-such-image:1.0}
      baseCommand: ["true"]
      inputs: []
      outputs: []
  works:
    in: []
    out: []
    run:
      class: CommandLineTool
      requirements:
        DockerRequirement: {dockerPull: docker.io/library/alpine}
      baseCommand: ["true"]
      inputs: []
      outputs: []
