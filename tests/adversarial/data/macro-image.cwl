# An image reference carrying an HTCondor submit-language macro.
cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement: {dockerPull: "docker.io/library/alpine$ENV(AWS_SECRET_ACCESS_KEY)"}
baseCommand: ["true"]
inputs: []
outputs: []
