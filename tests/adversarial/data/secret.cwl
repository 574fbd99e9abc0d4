# A secret input, used on the command line and in the environment; the step writes only digests
# of what it saw, so that nothing it writes holds the secret.
cwlVersion: v1.2
class: CommandLineTool
$namespaces: {cwltool: "http://commonwl.org/cwltool#"}
requirements:
  DockerRequirement: {dockerPull: docker.io/library/alpine}
  EnvVarRequirement: {envDef: {PASSWORD_ENV: $(inputs.pw)}}
hints:
  cwltool:Secrets: {secrets: [pw]}
baseCommand: [sh, -c, 'printf %s "$0" | sha256sum | cut -c1-64 > seen.txt; printf %s "$PASSWORD_ENV" | sha256sum | cut -c1-64 >> seen.txt']
inputs:
  pw:
    type: string
    inputBinding: {position: 1}
outputs:
  seen:
    type: File
    outputBinding: {glob: seen.txt}
