"""Stage 3, ir: the view over a canonical graph (:mod:`.graph`), where to explain
(:mod:`.planning`: logits, split tensor, head and body chains), the emitter of new nodes
(:mod:`.emit`) and convolution geometry (:mod:`.geometry`)."""
