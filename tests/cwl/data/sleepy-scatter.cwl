cwlVersion: v1.2
class: Workflow
requirements:
  ScatterFeatureRequirement: {}
inputs:
  ids: int[]
outputs:
  spans:
    type: File[]
    outputSource: nap/span
steps:
  nap:
    scatter: id
    in: {id: ids}
    out: [span]
    run:
      class: CommandLineTool
      requirements:
        DockerRequirement: {dockerPull: docker.io/library/debian:stable-slim}
      inputs:
        id: {type: int, inputBinding: {position: 1}}
      baseCommand: [sh, -c, 'date +%s.%N > span-$0; sleep 2; date +%s.%N >> span-$0']
      outputs:
        span:
          type: File
          outputBinding: {glob: span-*}
