cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement: {dockerPull: docker.io/library/alpine}
baseCommand: [sh, -c, "echo about to fail >&2; exit 1"]
inputs: []
outputs: []
