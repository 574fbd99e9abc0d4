cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c, "cat /etc/os-release | grep ^ID= > where.txt"]
inputs: []
outputs:
  where:
    type: File
    outputBinding: {glob: where.txt}
