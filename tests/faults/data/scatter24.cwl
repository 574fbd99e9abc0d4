cwlVersion: v1.2
class: Workflow
doc: A 24-way scatter of short steps (a few seconds each), for faults injected while it runs.
requirements:
  ScatterFeatureRequirement: {}
inputs:
  ids: int[]
  seconds: int
outputs:
  said:
    type: File[]
    outputSource: step/said
steps:
  step:
    scatter: id
    in: {id: ids, seconds: seconds}
    out: [said]
    run:
      class: CommandLineTool
      requirements:
        DockerRequirement: {dockerPull: docker.io/library/alpine}
      inputs:
        id: {type: int, inputBinding: {position: 1}}
        seconds: {type: int, inputBinding: {position: 2}}
      baseCommand: [sh, -c, 'sleep "$1"; echo "step $0"']
      stdout: said.txt
      outputs:
        said: {type: stdout}
