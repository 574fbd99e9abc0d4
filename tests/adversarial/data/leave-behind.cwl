# A step that starts a process in the background and ends at once, successfully.
cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement: {dockerPull: docker.io/library/alpine}
baseCommand: [sh, -c, 'sleep 2851 & echo started > started.txt']
inputs: []
outputs:
  started:
    type: File
    outputBinding: {glob: started.txt}
