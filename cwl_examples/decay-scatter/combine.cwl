cwlVersion: v1.2
class: CommandLineTool
doc: Combine the per-seed lifetime fits (inverse-variance weighted mean).
requirements:
  DockerRequirement:
    dockerPull: docker.io/library/python:3-slim
  InitialWorkDirRequirement:
    listing:
      - entryname: combine.py
        entry: |
          import json, math, sys
          fits = [json.load(open(path)) for path in sys.argv[1:]]
          weights = [1.0 / f["error"] ** 2 for f in fits]
          tau = sum(w * f["tau"] for w, f in zip(weights, fits)) / sum(weights)
          histogram = [sum(f["histogram"][i] for f in fits) for i in range(10)]
          json.dump({"steps": len(fits), "events": sum(f["events"] for f in fits),
                     "seeds": sorted(f["seed"] for f in fits), "tau": tau,
                     "error": 1.0 / math.sqrt(sum(weights)), "histogram": histogram},
                    open("summary.json", "w"), indent=1)
baseCommand: [python3, combine.py]
inputs:
  fits:
    type: File[]
    inputBinding: {position: 1}
outputs:
  summary:
    type: File
    outputBinding:
      glob: summary.json
