cwlVersion: v1.2
class: CommandLineTool
doc: One word per line, empty lines dropped.
requirements:
  DockerRequirement:
    dockerPull: docker.io/library/alpine
baseCommand: [sh, -c]
arguments:
  - tr -s '[:space:]' '\n' < "$0" | grep -v '^$'
  - $(inputs.text.path)
inputs:
  text: File
stdout: words.txt
outputs:
  words:
    type: stdout
