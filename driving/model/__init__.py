"""The learned driver: wiring, sequence cores, the steering policy, checkpoints, ONNX export.

NCP wiring; CfC, LTC and discrete sequence cores; the steering policy (conv head + core); its
checkpoint format; the ONNX export of one closed-loop step.
"""
