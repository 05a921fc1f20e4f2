"""What several rules share and no op owns: the AE and LRP layer formulas
(:mod:`.equilibrium`, :mod:`.lrp`), the splits where tensors join (:mod:`.joins`), and the base
classes of rule families (:mod:`.activation`, :mod:`.elementwise`, :mod:`.pooling`,
:mod:`.mapping`, :mod:`.dense`, :mod:`.convolution`). It registers nothing: the discovery in
``aeq_onnx/rules/__init__.py`` imports only the op modules beside it."""
