# A step that ignores SIGTERM and leaves a process in a session of its own, with a time limit.
cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement: {dockerPull: docker.io/library/alpine}
  ToolTimeLimit: {timelimit: 5}
baseCommand: [sh, -c, 'trap "" TERM; setsid sleep 2847 & sleep 2848; wait']
inputs: []
outputs: []
