cwlVersion: v1.2
class: CommandLineTool
doc: Draw decay times from an exponential law and estimate the lifetime (maximum likelihood).
requirements:
  DockerRequirement:
    dockerPull: docker.io/library/python:3-slim
  InitialWorkDirRequirement:
    listing:
      - entryname: simulate.py
        entry: |
          import json, math, random, sys
          seed, events, lifetime = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
          rng = random.Random(seed)
          times = [rng.expovariate(1.0 / lifetime) for _ in range(events)]
          mean = sum(times) / events
          # the maximum-likelihood lifetime is the mean; its standard error is mean / sqrt(n)
          bins = [0] * 10
          for t in times:
              bins[min(int(t / lifetime * 2), 9)] += 1
          json.dump({"seed": seed, "events": events, "tau": mean, "error": mean / math.sqrt(events),
                     "histogram": bins}, open("fit-%d.json" % seed, "w"), indent=1)
baseCommand: [python3, simulate.py]
inputs:
  seed:
    type: int
    inputBinding: {position: 1}
  events:
    type: int
    inputBinding: {position: 2}
  lifetime:
    type: float
    inputBinding: {position: 3}
outputs:
  fit:
    type: File
    outputBinding:
      glob: fit-*.json
