# A step that ignores SIGTERM and leaves a process in a session of its own, without a time limit.
cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement: {dockerPull: docker.io/library/alpine}
baseCommand: [sh, -c, 'trap "" TERM; setsid sleep 2849 & sleep 2850; wait']
inputs: []
outputs: []
