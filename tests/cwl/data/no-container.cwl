cwlVersion: v1.2
class: CommandLineTool
doc: Says where it ran; the host is Debian, the alpine stand-in image is not.
baseCommand: [sh, -c, "cat /etc/debian_version 2>/dev/null || echo not-debian"]
stdout: where.txt
inputs: []
outputs:
  where:
    type: stdout
