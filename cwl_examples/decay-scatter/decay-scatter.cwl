#!/usr/bin/env scailfin-cwl
# A scatter of Python steps on docker.io/library/python:3-slim, then a gather step: each step
# simulates muon decays with its own seed and fits the lifetime; the last step combines them.
cwlVersion: v1.2
class: Workflow
doc: Simulate decay times in parallel (one step per seed) and combine the lifetime estimates.
requirements:
  ScatterFeatureRequirement: {}
inputs:
  seeds: int[]
  events: int
  lifetime: float
outputs:
  summary:
    type: File
    outputSource: combine/summary
  fits:
    type: File[]
    outputSource: simulate/fit
steps:
  simulate:
    run: simulate.cwl
    scatter: seed
    in:
      seed: seeds
      events: events
      lifetime: lifetime
    out: [fit]
  combine:
    run: combine.cwl
    in:
      fits: simulate/fit
    out: [summary]
