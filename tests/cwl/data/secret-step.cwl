cwlVersion: v1.2
class: CommandLineTool
$namespaces: {cwltool: "http://commonwl.org/cwltool#"}
requirements:
  DockerRequirement: {dockerPull: docker.io/library/alpine}
hints:
  cwltool:Secrets:
    secrets: [pw]
inputs:
  pw: {type: string, inputBinding: {position: 1}}
baseCommand: [sh, -c, 'echo "a secret of ${#0} characters"']
stdout: o.txt
outputs:
  o: {type: stdout}
