"""Package queue is in charge of outgoing mail: routing it through DNS, delivering it over SMTP,
retrying on the schedule with per-destination restraint, and reporting to the sender.

Invariants:
- An attempt (attempt count and the next retry time) is written to the store BEFORE dialling, so
  a crash during delivery never makes the message be retried sooner than planned.
- Each recipient's result is written as soon as its reply arrives; a recipient recorded as
  delivered or failed is never sent again, so a restart resumes without duplicates.
- A queue entry disappears only when every recipient is final and every report owed is stored.
- Scheduling is a heap of due times plus one timer; its cost per message does not grow with
  the queue. Time comes from an injected ``Clock``.
"""
