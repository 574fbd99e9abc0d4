cwlVersion: v1.2
class: Workflow
doc: Six long steps side by side (to be interrupted).
requirements:
  ScatterFeatureRequirement: {}
inputs:
  ids: int[]
outputs: []
steps:
  wait:
    scatter: id
    in: {id: ids}
    out: []
    run:
      class: CommandLineTool
      requirements:
        DockerRequirement: {dockerPull: docker.io/library/alpine}
      inputs:
        id: {type: int, inputBinding: {position: 1}}
      baseCommand: [sleep, "300"]
      outputs: []
