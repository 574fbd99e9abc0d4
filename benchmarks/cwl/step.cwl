cwlVersion: v1.2
class: CommandLineTool
doc: One small containerised step - appends its number to what it was given.
requirements:
  DockerRequirement: {dockerPull: docker.io/library/alpine}
inputs:
  previous: {type: File?, inputBinding: {position: 2}}
  n: {type: int, inputBinding: {position: 1}}
baseCommand: [sh, -c, 'cat "$1" 2>/dev/null; echo "$0"']
stdout: out.txt
outputs:
  out: {type: stdout}
