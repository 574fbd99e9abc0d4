cwlVersion: v1.2
class: Workflow
doc: A 24-way scatter whose steps above `quick` wait until the time `until` (seconds since the epoch), to be interrupted, then resumed.
requirements:
  ScatterFeatureRequirement: {}
inputs:
  ids: int[]
  quick: int
  until: int
outputs:
  said:
    type: File[]
    outputSource: step/said
steps:
  step:
    scatter: id
    in: {id: ids, quick: quick, until: until}
    out: [said]
    run:
      class: CommandLineTool
      requirements:
        DockerRequirement: {dockerPull: docker.io/library/alpine}
      inputs:
        id: {type: int, inputBinding: {position: 1}}
        quick: {type: int, inputBinding: {position: 2}}
        until: {type: int, inputBinding: {position: 3}}
      baseCommand: [sh, -c, 'if [ "$0" -gt "$1" ]; then while [ "$(date +%s)" -lt "$2" ]; do sleep 0.2; done; fi; echo "step $0"']
      stdout: said.txt
      outputs:
        said: {type: stdout}
