cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement: {dockerPull: docker.io/library/no-such-image:1.0}
baseCommand: [echo, hello]
inputs: []
outputs: []
