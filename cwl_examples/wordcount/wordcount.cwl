#!/usr/bin/env scailfin-cwl
# Two steps on docker.io/library/alpine: split a text into one word per line, then count them.
cwlVersion: v1.2
class: Workflow
doc: Count the words of a text file, in two containerised steps.
inputs:
  text: File
outputs:
  words:
    type: File
    outputSource: split_words/words
  count:
    type: File
    outputSource: count_words/count
steps:
  split_words:
    run: split-words.cwl
    in:
      text: text
    out: [words]
  count_words:
    run: count-lines.cwl
    in:
      lines: split_words/words
    out: [count]
