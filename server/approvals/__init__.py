"""Approvals given by a person, out of the model's reach.

- `pending`: one approval asked for (`ApprovalRequest`) and its life (`Pending`, `Status`): bound to the
  tool, its exact arguments, the caller and a digest of the previewed state; single-use; it expires.
- `store`: the `Approvals` interface and the store in this process (`redis_store.RedisApprovals` is the
  one replicas share).
- `page`: the page a person approves on: on loopback (`ApprovalPage`) or as routes of the HTTP app
  (`ServedPage`); `signin`: the hosted page, where the person signs in first (`SignedInPage`).
"""
