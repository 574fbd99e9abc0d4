cwlVersion: v1.2
class: CommandLineTool
doc: Count the lines of a file (read on stdin).
requirements:
  DockerRequirement:
    dockerPull: docker.io/library/alpine
baseCommand: [wc, -l]
inputs:
  lines: File
stdin: $(inputs.lines.path)
stdout: count.txt
outputs:
  count:
    type: stdout
