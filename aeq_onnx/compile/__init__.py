"""Stage 6, compile: one explainer ModelProto from a classifier.

:mod:`.prepare` (load, canonicalise, view, plan), :mod:`.compiler` (the method's chains, the
checks), :mod:`.assemble` (inputs, outputs, metadata), :mod:`.inspection` (the same plan,
reported node by node instead of emitted) and :mod:`.precision` (the fp16 rewrite).
"""
