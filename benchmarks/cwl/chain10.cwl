cwlVersion: v1.2
class: Workflow
doc: Ten containerised steps in a chain.
inputs: []
outputs:
  last: {type: File, outputSource: s10/out}
steps:
  s1:
    run: step.cwl
    in:
      n: {default: 1}
    out: [out]
  s2:
    run: step.cwl
    in:
      n: {default: 2}
      previous: s1/out
    out: [out]
  s3:
    run: step.cwl
    in:
      n: {default: 3}
      previous: s2/out
    out: [out]
  s4:
    run: step.cwl
    in:
      n: {default: 4}
      previous: s3/out
    out: [out]
  s5:
    run: step.cwl
    in:
      n: {default: 5}
      previous: s4/out
    out: [out]
  s6:
    run: step.cwl
    in:
      n: {default: 6}
      previous: s5/out
    out: [out]
  s7:
    run: step.cwl
    in:
      n: {default: 7}
      previous: s6/out
    out: [out]
  s8:
    run: step.cwl
    in:
      n: {default: 8}
      previous: s7/out
    out: [out]
  s9:
    run: step.cwl
    in:
      n: {default: 9}
      previous: s8/out
    out: [out]
  s10:
    run: step.cwl
    in:
      n: {default: 10}
      previous: s9/out
    out: [out]
