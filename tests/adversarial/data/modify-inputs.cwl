# A step that tries to change what it was given: append to its File input, delete a file in its
# Directory input. Inputs are read-only on every runtime, so both fail and the run goes on.
cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement: {dockerPull: docker.io/library/alpine}
  ShellCommandRequirement: {}
inputs:
  data: File
  dir: Directory
arguments:
  - shellQuote: false
    valueFrom: >
      echo tampered >> '$(inputs.data.path)';
      rm -f '$(inputs.dir.path)/victim.txt';
      if [ -e '$(inputs.dir.path)/victim.txt' ]; then echo kept > report.txt; else echo deleted > report.txt; fi
outputs:
  report:
    type: File
    outputBinding: {glob: report.txt}
