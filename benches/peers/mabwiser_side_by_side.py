"""Side-by-side run of `tuneloop simulate --supervised` against MABWiser's
LinUCB and LinTS on one supervised-to-bandit CSV (header; numeric features;
last column the integer label), with the same progressive protocol: for
each row in file order, choose an arm from the features, then learn the
reward (1 if the arm is the label, else 0) of that arm only.

Usage: mabwiser_side_by_side.py DATA.csv [TUNELOOP_BIN]
Needs the peer environment (../shared/peers/setup.sh). Prints one JSON
object: each system's average progressive reward and decisions per second,
measured in this one run."""
import json, subprocess, sys, time

import numpy as np
from mabwiser.mab import MAB, LearningPolicy

csv = sys.argv[1]
binary = sys.argv[2] if len(sys.argv) > 2 else "target/release/tuneloop"
data = np.loadtxt(csv, delimiter=",", skiprows=1)
X, y = data[:, :-1], data[:, -1].astype(int)
K = int(y.max()) + 1
out = {"rounds": len(y), "arms": K, "features": X.shape[1]}

for label, policy in {
    "mabwiser-linucb": LearningPolicy.LinUCB(alpha=1.0),
    "mabwiser-lints": LearningPolicy.LinTS(alpha=1.0),
}.items():
    mab = MAB(arms=list(range(K)), learning_policy=policy, seed=1)
    # MABWiser needs a fit before the first prediction: one zero-reward
    # observation of arm 0 with an all-zero context (it carries no signal).
    mab.fit(decisions=[0], rewards=[0.0], contexts=np.zeros((1, X.shape[1])))
    total = 0.0
    t = time.time()
    for i in range(len(y)):
        x = X[i : i + 1]
        a = mab.predict(x)
        r = 1.0 if a == y[i] else 0.0
        total += r
        mab.partial_fit(decisions=[a], rewards=[r], contexts=x)
    secs = time.time() - t
    out[label] = {"average_reward": total / len(y), "decisions_per_second": len(y) / secs}

for policy in ["linucb", "thompson"]:
    t = time.time()
    res = subprocess.run([binary, "simulate", "--supervised", csv, "--policy", policy, "--seed", "1"],
                         capture_output=True, text=True, check=True)
    wall = time.time() - t
    r = json.loads(res.stdout)
    out[f"tuneloop-{policy}"] = {"average_reward": r["average_reward"],
        "decisions_per_second_reported": r["decisions_per_second"], "decisions_per_second_wall": len(y) / wall}
out["speed_ratio_wall_linucb"] = (out["tuneloop-linucb"]["decisions_per_second_wall"]
                                  / out["mabwiser-linucb"]["decisions_per_second"])
print(json.dumps(out, indent=1))
