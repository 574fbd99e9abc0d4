cwlVersion: v1.2
class: Workflow
doc: One step whose result depends on an environment variable it inherits from the workflow and on one passed from the host (--preserve-environment FROM_HOST).
requirements:
  EnvVarRequirement:
    envDef:
      FROM_WORKFLOW: one
inputs: []
outputs:
  said:
    type: File
    outputSource: say/said
steps:
  say:
    in: []
    out: [said]
    run:
      class: CommandLineTool
      requirements:
        DockerRequirement: {dockerPull: docker.io/library/alpine}
      inputs: []
      baseCommand: [sh, -c, 'echo "$FROM_WORKFLOW ${FROM_HOST:-}"']
      stdout: said.txt
      outputs:
        said: {type: stdout}
