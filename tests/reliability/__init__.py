"""Reliability: each defect found by hostile use (issue #14) reproduced first, then fixed."""
