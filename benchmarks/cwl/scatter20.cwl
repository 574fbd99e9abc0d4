cwlVersion: v1.2
class: Workflow
doc: Twenty containerised steps side by side.
requirements:
  ScatterFeatureRequirement: {}
inputs:
  ns: {type: 'int[]', default: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]}
outputs:
  outs: {type: 'File[]', outputSource: each/out}
steps:
  each:
    run: step.cwl
    scatter: n
    in: {n: ns}
    out: [out]
