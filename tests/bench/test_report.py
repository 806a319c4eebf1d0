#!/usr/bin/env python3
"""bench/report.py on made-up results: the goals table says which goals vaultfs met, and
which ceiling (raw, passthrough) did not reach a goal in the same run, whether vaultfs-agent
(a user's mount through the key agent) kept 0.9x of vaultfs on each workload, and whether
vaultfs-audit (vaultfs with its audit trail) did, that is whether the trail cost at most 10%;
and the report names the audit trails verified after the run, with their records.
Prints the summary line "checks: N passed, N failed" like every other test program."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

REPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "report.py")

# workload -> (unit, better, {target: [value per repetition]})
RESULTS = {
    # vaultfs per repetition 3.0, 2.4, 1.0 x gocryptfs: the median of the same-run ratios is
    # 2.4 (met), where the ratio of the medians would be 2.0. vaultfs-agent per repetition
    # 0.9, 1.0, 0.75 x vaultfs: median 0.9, met (the goal is reached at exactly 0.9);
    # vaultfs-audit 0.9, 1.1, 0.9 x vaultfs: median 0.9, met as well.
    "seq_write": ("MiB/s", "higher", {"raw": [400, 400, 400], "passthrough": [150, 150, 150],
                                      "gocryptfs": [100, 50, 200], "securefs": [50, 60, 70],
                                      "vaultfs": [300, 120, 200],
                                      "vaultfs-audit": [270, 132, 180],
                                      "vaultfs-agent": [270, 120, 150]}),
    # a time: vaultfs 2.0 / 1.6 = 1.25x securefs, not met; passthrough 2.0 / 1.25 = 1.6x;
    # vaultfs-agent 1.6 / 2.0 = 0.8x vaultfs, not met; vaultfs-audit 1.0, 0.8, 0.8x vaultfs:
    # median 0.8, not met (the trail cost 20%)
    "tree_untar": ("s", "lower", {"raw": [0.5, 0.5, 0.5], "passthrough": [1.25, 1.25, 1.25],
                                  "gocryptfs": [3.0, 3.0, 3.0], "securefs": [2.0, 2.0, 2.0],
                                  "vaultfs": [1.6, 1.6, 1.6], "vaultfs-audit": [1.6, 2.0, 2.0],
                                  "vaultfs-agent": [2.0, 2.0, 2.0]}),
    # the disk itself is no faster than the best peer: the goal is above raw;
    # vaultfs-agent 100 / 110 = 0.91x vaultfs, met; vaultfs-audit 104.5 / 110 = 0.95x, met
    "rand_read": ("IOPS", "higher", {"raw": [100, 100, 100], "passthrough": [100, 100, 100],
                                     "gocryptfs": [90, 90, 90], "securefs": [100, 100, 100],
                                     "vaultfs": [110, 110, 110],
                                     "vaultfs-audit": [104.5, 104.5, 104.5],
                                     "vaultfs-agent": [100, 100, 100]}),
    # vaultfs failed every repetition: no ratio, neither met nor missed (for vaultfs-agent
    # or vaultfs-audit, which have no reference then)
    "seq_read": ("MiB/s", "higher", {"raw": [900], "passthrough": [500], "gocryptfs": [400],
                                     "securefs": [450], "vaultfs": None, "vaultfs-audit": [470],
                                     "vaultfs-agent": [480]}),
    # vaultfs-agent and vaultfs-audit failed: their goals are neither met nor missed
    "tree_ls": ("s", "lower", {"raw": [0.1], "passthrough": [0.2], "gocryptfs": [0.4],
                               "securefs": [0.5], "vaultfs": [0.25], "vaultfs-audit": None,
                               "vaultfs-agent": None}),
}

# The kind=audit lines bench/run writes once every mount has ended: 'vaultctl audit verify'.
TRAILS_OK = [
    {"kind": "audit", "target": "vaultfs-audit", "dir": "/w/audit-keyfile", "status": "ok",
     "records": 1234},
    {"kind": "audit", "target": "vaultfs-agent", "dir": "/w/audit/bench", "status": "ok",
     "records": 567},
]
TRAIL_BROKEN = [
    TRAILS_OK[0],
    {"kind": "audit", "target": "vaultfs-agent", "dir": "/w/audit/bench", "status": "failed",
     "reason": "vaultctl audit verify: exit status 1: vaultctl: trail '/w/audit/bench' is not "
               "intact at record 7 in 'seg-0000000000000001.jsonl': prev does not match"},
]
AUDIT_LABEL = "{}: audit costs <= 10% (vaultfs-audit >= 0.9x vaultfs)"


def write_results(path, hwm_kib, trails):
    lines = [{"kind": "meta", "profile": "test", "reps": 3}]
    for t in ("raw", "passthrough", "gocryptfs", "securefs", "vaultfs", "vaultfs-audit",
              "vaultfs-agent"):
        lines.append({"kind": "target", "target": t, "status": "ok"})
    for w, (unit, better, by_target) in RESULTS.items():
        for t, values in by_target.items():
            if values is None:
                lines.append({"kind": "result", "rep": 1, "workload": w, "target": t,
                              "status": "failed", "reason": "exit status 1"})
                continue
            for rep, v in enumerate(values, 1):
                lines.append({"kind": "result", "rep": rep, "workload": w, "target": t,
                              "status": "ok", "value": v, "unit": unit, "better": better,
                              "cpu_s": 0.5, "hwm_kib": hwm_kib, "bytes": 0})
    lines += trails
    lines.append({"kind": "end", "status": "complete", "seconds": 1})
    with open(path, "w") as f:
        f.write("\n".join(json.dumps(l) for l in lines) + "\n")


def run_report(hwm_kib=30 * 1024, trails=TRAILS_OK):
    # Removed on return: a test leaves nothing in the temporary directory.
    with tempfile.TemporaryDirectory(prefix="vaultfs-report.") as out:
        write_results(os.path.join(out, "results.jsonl"), hwm_kib, trails)
        text = subprocess.run([sys.executable, REPORT, out], check=True, capture_output=True,
                              text=True).stdout
        with open(os.path.join(out, "report.json")) as f:
            rep = json.load(f)
        with open(os.path.join(out, "report.md")) as f:
            md = f.read()
    return rep, text, md


def goal(rep, workload, reference, target="vaultfs"):
    found = [g for g in rep["goals"] if g["workload"] == workload
             and g["reference"] == reference and g["target"] == target]
    assert len(found) == 1, (workload, reference, target, rep["goals"])
    return found[0]


class Goals(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.rep, cls.text, cls.md = run_report()

    def test_met_goal_uses_the_median_of_same_run_ratios(self):
        g = goal(self.rep, "seq_write", "gocryptfs")
        self.assertAlmostEqual(g["value"], 2.4)
        self.assertTrue(g["met"])
        self.assertAlmostEqual(g["passthrough"], 1.5)   # 1.5, 3.0, 0.75
        self.assertAlmostEqual(g["raw"], 4.0)           # 4, 8, 2

    def test_passthrough_goal_has_no_passthrough_ceiling(self):
        g = goal(self.rep, "seq_write", "passthrough")
        self.assertAlmostEqual(g["value"], 4 / 3)       # 2.0, 0.8, 1.33
        self.assertTrue(g["met"])
        self.assertIsNone(g["passthrough"])

    def test_times_compare_as_speeds(self):
        g = goal(self.rep, "tree_untar", "securefs")
        self.assertAlmostEqual(g["value"], 1.25)
        self.assertFalse(g["met"])
        self.assertAlmostEqual(g["passthrough"], 1.6)

    def test_ceilings_below_the_goal_are_named(self):
        rows = {l.split("  ")[0]: l for l in self.text.splitlines() if " >= " in l}
        self.assertIn("raw < goal", rows["rand_read >= 1.2x securefs"])
        self.assertIn("NO", rows["rand_read >= 1.2x securefs"])
        self.assertIn("passthrough < goal", rows["seq_write >= 2.0x gocryptfs"])
        self.assertNotIn("< goal", rows["tree_untar >= 1.5x securefs"])
        self.assertIn("| rand_read >= 1.2x securefs | vaultfs | 1.10 | NO |", self.md)

    def test_failed_workload_is_neither_met_nor_missed(self):
        g = goal(self.rep, "seq_read", "securefs")
        self.assertIsNone(g["value"])
        self.assertIsNone(g["met"])

    def test_goals_of_workloads_not_run_are_left_out(self):
        self.assertEqual([g for g in self.rep["goals"] if g["workload"] == "ckpt_write"], [])

    def test_agent_goal_at_the_minimum_is_met(self):
        g = goal(self.rep, "seq_write", "vaultfs", "vaultfs-agent")
        self.assertAlmostEqual(g["value"], 0.9)         # 0.9, 1.0, 0.75
        self.assertEqual(g["minimum"], 0.9)
        self.assertTrue(g["met"])

    def test_agent_goal_missed_and_met(self):
        g = goal(self.rep, "tree_untar", "vaultfs", "vaultfs-agent")
        self.assertAlmostEqual(g["value"], 0.8)         # times compare as speeds
        self.assertFalse(g["met"])
        g = goal(self.rep, "rand_read", "vaultfs", "vaultfs-agent")
        self.assertAlmostEqual(g["value"], 100 / 110)
        self.assertTrue(g["met"])

    def test_agent_goal_without_a_ratio_is_neither_met_nor_missed(self):
        for workload in ("seq_read", "tree_ls"):    # vaultfs failed; vaultfs-agent failed
            g = goal(self.rep, workload, "vaultfs", "vaultfs-agent")
            self.assertIsNone(g["value"])
            self.assertIsNone(g["met"])

    def test_agent_goals_one_per_workload_run(self):
        agent = [g["workload"] for g in self.rep["goals"] if g["target"] == "vaultfs-agent"]
        self.assertEqual(agent, ["seq_write", "seq_read", "rand_read", "tree_untar", "tree_ls"])

    def test_agent_goals_in_the_table(self):
        rows = {l.split("  ")[0]: l for l in self.text.splitlines() if " >= " in l}
        self.assertIn("vaultfs-agent", rows["tree_untar >= 0.9x vaultfs"])
        self.assertIn("0.80", rows["tree_untar >= 0.9x vaultfs"])
        self.assertIn("NO", rows["tree_untar >= 0.9x vaultfs"])
        self.assertNotIn("< goal", rows["tree_untar >= 0.9x vaultfs"])
        self.assertIn("| seq_write >= 0.9x vaultfs | vaultfs-agent | 0.90 | yes |", self.md)

    def test_agent_ratio_and_resources_are_reported(self):
        w = [w for w in self.rep["workloads"] if w["name"] == "rand_read"][0]
        self.assertAlmostEqual(w["targets"]["vaultfs-agent"]["ratio_vaultfs"], 100 / 110)
        self.assertAlmostEqual(w["targets"]["vaultfs-agent"]["ratio_passthrough"], 1.0)
        self.assertAlmostEqual(self.rep["resources"]["vaultfs-agent"]["peak_rss_mib"], 30.0)
        self.assertIn("vaultfs-agent (mounted by a user through the key agent, audit trail on)",
                      self.text)

    def test_audit_goal_at_the_minimum_is_met(self):
        g = goal(self.rep, "seq_write", "vaultfs", "vaultfs-audit")
        self.assertAlmostEqual(g["value"], 0.9)         # 0.9, 1.1, 0.9
        self.assertEqual(g["minimum"], 0.9)
        self.assertTrue(g["met"])
        self.assertEqual(g["goal"], AUDIT_LABEL.format("seq_write"))

    def test_audit_goal_missed_and_met(self):
        g = goal(self.rep, "tree_untar", "vaultfs", "vaultfs-audit")
        self.assertAlmostEqual(g["value"], 0.8)         # 1.0, 0.8, 0.8: times as speeds
        self.assertFalse(g["met"])
        g = goal(self.rep, "rand_read", "vaultfs", "vaultfs-audit")
        self.assertAlmostEqual(g["value"], 0.95)
        self.assertTrue(g["met"])

    def test_audit_goal_without_a_ratio_is_neither_met_nor_missed(self):
        for workload in ("seq_read", "tree_ls"):    # vaultfs failed; vaultfs-audit failed
            g = goal(self.rep, workload, "vaultfs", "vaultfs-audit")
            self.assertIsNone(g["value"])
            self.assertIsNone(g["met"])

    def test_audit_goals_one_per_workload_run_after_the_agent_goals(self):
        targets = [g["target"] for g in self.rep["goals"]]
        audit = [g["workload"] for g in self.rep["goals"] if g["target"] == "vaultfs-audit"]
        self.assertEqual(audit, ["seq_write", "seq_read", "rand_read", "tree_untar", "tree_ls"])
        self.assertLess(max(i for i, t in enumerate(targets) if t == "vaultfs-agent"),
                        min(i for i, t in enumerate(targets) if t == "vaultfs-audit"))

    def test_audit_goals_in_the_table(self):
        rows = {l.split("  ")[0]: l for l in self.text.splitlines() if " >= " in l}
        row = rows[AUDIT_LABEL.format("tree_untar")]
        self.assertIn("vaultfs-audit", row)
        self.assertIn("0.80", row)
        self.assertIn("NO", row)
        self.assertNotIn("< goal", row)
        self.assertIn(" - ", rows[AUDIT_LABEL.format("tree_ls")])   # neither met nor missed
        self.assertIn("| %s | vaultfs-audit | 0.90 | yes |" % AUDIT_LABEL.format("seq_write"),
                      self.md)
        # the agent's rows keep their own label
        self.assertIn("vaultfs-agent", rows["tree_untar >= 0.9x vaultfs"])

    def test_audit_ratio_is_reported(self):
        w = [w for w in self.rep["workloads"] if w["name"] == "rand_read"][0]
        self.assertAlmostEqual(w["targets"]["vaultfs-audit"]["ratio_vaultfs"], 0.95)
        table = [l for l in self.text.splitlines() if l.split()[:1] == ["vaultfs-audit"]]
        self.assertTrue(any("0.95" in l for l in table), table)
        self.assertIn("vaultfs-audit (vaultfs with its audit trail)", self.text)

    def test_audit_trails_line(self):
        line = ("audit trails: vaultfs-audit 1234 records, verified ok; "
                "vaultfs-agent 567 records, verified ok")
        self.assertIn(line, self.text.splitlines())
        self.assertIn(line, self.md.splitlines())
        self.assertEqual([a["records"] for a in self.rep["audit"]], [1234, 567])

    def test_audit_trail_that_did_not_verify_is_named(self):
        _, text, md = run_report(trails=TRAIL_BROKEN)
        line = [l for l in text.splitlines() if l.startswith("audit trails: ")]
        self.assertEqual(len(line), 1)
        self.assertIn("vaultfs-audit 1234 records, verified ok; vaultfs-agent NOT VERIFIED: ",
                      line[0])
        self.assertIn("not intact at record 7", line[0])
        self.assertIn("vaultfs-agent NOT VERIFIED", md)

    def test_no_audit_line_without_trails(self):
        rep, text, md = run_report(trails=[])
        self.assertFalse([l for l in text.splitlines() if l.startswith("audit trails")])
        self.assertNotIn("## Audit trails", md)
        self.assertEqual(rep["audit"], [])

    def test_peak_rss_goal(self):
        rss = [g for g in self.rep["goals"] if g["workload"].startswith("peak RSS")]
        self.assertEqual(len(rss), 1)
        self.assertAlmostEqual(rss[0]["value"], 30.0)
        self.assertTrue(rss[0]["met"])
        big, _, _ = run_report(hwm_kib=150 * 1024)
        self.assertFalse([g for g in big["goals"] if g["workload"].startswith("peak RSS")][0]["met"])


if __name__ == "__main__":
    result = unittest.TextTestRunner(verbosity=2).run(
        unittest.defaultTestLoader.loadTestsFromTestCase(Goals))
    bad = len(result.failures) + len(result.errors)
    print("checks: %d passed, %d failed" % (result.testsRun - bad, bad))
    sys.exit(1 if bad or not result.testsRun else 0)
