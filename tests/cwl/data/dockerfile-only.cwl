cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement:
    dockerFile: |
      FROM alpine
    dockerImageId: ""
baseCommand: [echo, hello]
inputs: []
outputs: []
