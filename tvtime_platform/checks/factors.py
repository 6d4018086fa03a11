"""The quality gate of the recommendation factors: they must beat recommending the most popular shows.

The check is evaluated by the factorization entrypoint itself (it holds the model and the held-out
split) and reported through Pipes; it is declared here, blocking, so that factors that fail it
never reach `show_recommendations`.
"""

import dagster as dg

MIN_LIFT = 0.05

beats_popularity_baseline = dg.AssetCheckSpec(
    "beats_popularity_baseline",
    asset="user_factors",
    blocking=True,
    description=f"Blocking: NDCG@10 on each user's held-out latest show beats the popularity baseline's on the same split "
                f"by the configured margin (default {MIN_LIFT:.0%}); precision@10, recall@10 and coverage reported beside.",
)
