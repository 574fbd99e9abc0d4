# One small step.
cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement: {dockerPull: docker.io/library/alpine}
baseCommand: [sh, -c, 'echo hello > hello.txt']
inputs: []
outputs:
  hello:
    type: File
    outputBinding: {glob: hello.txt}
