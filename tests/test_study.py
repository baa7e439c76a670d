"""A claim is robust only if it holds in every run, under every reference, after FDR, against the runner-up
and against the size-matched null; the study names what failed."""

from facexai.report.study import robust_claims


def claim(measure, emotion, region, estimate, rank, significant=True, on_sample="", null=""):
    return {"measure": measure, "emotion": emotion, "region": region, "estimate": estimate, "rank": rank,
            "significant": str(significant), "on_sample": on_sample, "size_null_p95": null}  # fmt: skip


def head(measure, emotion, top, runner_up, diff_low):
    return {"measure": measure, "emotion": emotion, "top": top, "runner_up": runner_up, "diff_low": diff_low}


def run(mouth_rank=1, mean_significant=True, diff_low=0.02, occlusion=0.3):
    rows, heads = [], []
    for ref in ("shapley/blur", "shapley/mean"):
        sig = mean_significant or ref != "shapley/mean"
        rows += [claim(ref, "happiness", "mouth", 0.4, mouth_rank, sig), claim(ref, "happiness", "eyes", 0.1,
                                                                             3 - mouth_rank)]  # fmt: skip
        top = "mouth" if mouth_rank == 1 else "eyes"
        heads.append(head(ref, "happiness", top, "eyes" if top == "mouth" else "mouth", diff_low))
    rows += [claim("occlusion/blur", "happiness", "mouth", 0.3, 1, on_sample=occlusion, null=0.1),
             claim("occlusion/blur", "happiness", "eyes", 0.05, 2, on_sample=0.05, null=0.1)]  # fmt: skip
    return rows, heads


def robust(*runs):
    per_run = {f"s{i}": r[0] for i, r in enumerate(runs)}
    per_heads = {f"s{i}": r[1] for i, r in enumerate(runs)}
    return {(c["claim"], c["region"]): c for c in robust_claims(per_run, per_heads)}


def test_a_claim_that_holds_everywhere_is_robust_and_one_that_fails_anywhere_is_not():
    out = robust(run(), run())
    assert out[("top", "mouth")]["robust"] and out[("driver", "mouth")]["robust"]
    assert not out[("driver", "eyes")]["robust"]  # below the size-matched null
    assert "occlusion within the size-matched null" in out[("driver", "eyes")]["why_not"]


def test_each_failure_is_named():
    split = robust(run(), run(mouth_rank=2))[("top", "mouth")]["why_not"]  # the first run's top is the candidate
    assert "s1 shapley/blur: eyes ranks first" in split and "s1 shapley/mean: eyes ranks first" in split
    why = robust(run(), run(mean_significant=False))[("top", "mouth")]["why_not"]
    assert why == "s1 shapley/mean: not significant after FDR"
    why = robust(run(diff_low=-0.01), run())[("top", "mouth")]["why_not"]
    assert "s0 shapley/blur: not clearly ahead of eyes (paired interval)" in why
    small = robust(run(occlusion=0.05), run())[("top", "mouth")]["why_not"]
    assert small == "s0: occlusion within the size-matched null"
