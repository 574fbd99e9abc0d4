cwlVersion: v1.2
class: CommandLineTool
doc: Writes 200 numbered lines over about 12 seconds (long enough to lose its pilot while writing).
requirements:
  DockerRequirement: {dockerPull: docker.io/library/alpine}
baseCommand: [sh, -c, 'for i in `seq 1 200`; do echo $i >> numbers.txt; sleep 0.06; done']
inputs: []
outputs:
  numbers:
    type: File
    outputBinding: {glob: numbers.txt}
