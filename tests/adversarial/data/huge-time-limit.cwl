# A time limit no timer can hold (stock cwltool runs the step anyway).
cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement: {dockerPull: docker.io/library/alpine}
  ToolTimeLimit: {timelimit: 9000000000000000000}
baseCommand: [sh, -c, 'echo ran > ran.txt']
inputs: []
outputs:
  ran:
    type: File
    outputBinding: {glob: ran.txt}
