"""Run-time semantics every target shares (stage 4-5): the step spec, reference resolution, `when`.

Takes the validated IR (to build a step's spec template) and run-time values (to resolve it); gives
what one step instance runs. The local executor, the KFP component shim and the runtime all call
these functions, and the Argo target translates the same rules into Argo's own expressions.
"""
