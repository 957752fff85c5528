"""The group assembler: whatever the arrival order and batching, a group's rewards are those of
one ``Stack.score`` call on the whole group; deadlines, bounds, cancellation and reuse of keys."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rewardplug
from rewardplug.groups import AssemblerFull, GroupAssembler
from rewardplug.plugins import import_object
from rewardplug.source import RewardSource
from rewardplug.types import Sample, Score

STACK = {
    "sources": [
        {
            "name": "noisy",
            "use": "python",
            "with": {"function": "tests.core.rewards_fixture:seeded_draws"},
        }
    ],
    "discretize": {"enabled": True, "confidence": 0.9},
}


@pytest.fixture(scope="module")
def stack():
    return rewardplug.load_stack(STACK)


def make_group(g: int, size: int, rng: random.Random) -> list[Sample]:
    # few distinct qualities, so that some members tie and some do not
    return [
        Sample(
            id=f"g{g}-{i}",
            group=f"p{g}",
            prompt=f"prompt {g}",
            response=f"answer {g}.{i}.{rng.random()}",
            metadata={"quality": rng.choice([0.0, 0.2, 1.0, 1.1, 3.0])},
        )
        for i in range(size)
    ]


def by_id(rewards):
    return {r.id: r for r in rewards}


def expected(stack, group: Sequence[Sample]):
    """One ``Stack.score`` call on the whole group, in the assembler's canonical order."""
    return by_id(stack.score(sorted(group, key=lambda s: s.id)))


def same(a, b) -> None:
    assert (a.reward, a.raw, a.std, a.tier, a.n_tiers, a.status, a.group_size) == (
        b.reward,
        b.raw,
        b.std,
        b.tier,
        b.n_tiers,
        b.status,
        b.group_size,
    )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    size=st.integers(1, 6),
    n_groups=st.integers(1, 4),
    seed=st.integers(0, 10**6),
    max_batch=st.integers(1, 8),
)
def test_any_arrival_order_and_batching_gives_the_whole_group_result(
    stack, size, n_groups, seed, max_batch
):
    rng = random.Random(seed)
    groups = [make_group(g, size, rng) for g in range(n_groups)]
    arrivals = [s for grp in groups for s in grp]
    rng.shuffle(arrivals)
    # cut the arrivals into partial batches (some single samples, some several)
    chunks, i = [], 0
    while i < len(arrivals):
        n = rng.randint(1, 4)
        chunks.append(arrivals[i : i + n])
        i += n

    async def run():
        assembler = GroupAssembler(stack, size, timeout_s=30, max_batch=max_batch, max_wait_ms=1)
        tasks = []
        for chunk in chunks:
            if len(chunk) == 1:
                tasks.append(asyncio.ensure_future(assembler.submit(chunk[0])))
            else:
                tasks.append(asyncio.ensure_future(assembler.submit_many(chunk)))
            await asyncio.sleep(rng.choice([0, 0, 0.001]))
        out = await asyncio.gather(*tasks)
        return assembler, [r for part in out for r in (part if isinstance(part, list) else [part])]

    assembler, rewards = asyncio.run(run())
    got = by_id(rewards)
    assert len(got) == len(arrivals)
    for grp in groups:
        want = expected(stack, grp)
        # and the input order does not matter beyond float summation order
        plain = by_id(stack.score(grp))
        for s in grp:
            same(got[s.id], want[s.id])
            assert got[s.id].tier == plain[s.id].tier
            assert got[s.id].reward == pytest.approx(plain[s.id].reward, rel=1e-12, abs=1e-12)
            assert got[s.id].partial is False
            assert got[s.id].group_size == size
    assert assembler.stats.groups_complete == n_groups
    assert assembler.stats.groups_partial == 0
    assert assembler.held == 0 and assembler.open_groups == 0


def test_a_group_that_never_completes_is_answered_at_its_deadline(stack):
    rng = random.Random(1)
    grp = make_group(0, 3, rng)

    async def run():
        assembler = GroupAssembler(stack, 8, timeout_s=0.2)
        loop = asyncio.get_running_loop()
        start = loop.time()
        out = await assembler.submit_many(grp)
        return assembler, out, loop.time() - start

    assembler, out, waited = asyncio.run(run())
    assert 0.15 < waited < 5
    want = expected(stack, grp)
    for r in out:
        same(r, want[r.id])
        assert r.partial is True and r.group_size == 3
    assert assembler.stats.groups_partial == 1


def test_extra_members_start_the_next_group(stack):
    rng = random.Random(2)
    grp = make_group(0, 6, rng)

    async def run():
        assembler = GroupAssembler(stack, 4, timeout_s=0.2)
        out = await asyncio.gather(*(assembler.submit(s) for s in grp))
        return assembler, out

    assembler, out = asyncio.run(run())
    first, second = grp[:4], grp[4:]
    want = {**expected(stack, first), **expected(stack, second)}
    for r in out:
        same(r, want[r.id])
    assert [r.partial for r in out] == [False] * 4 + [True] * 2
    assert assembler.stats.groups_reopened == 1
    assert assembler.stats.groups_complete == 1 and assembler.stats.groups_partial == 1


def test_a_prompt_seen_again_after_its_group_completed_starts_a_new_group(stack):
    rng = random.Random(3)
    grp = make_group(0, 2, rng)
    again = [s.model_copy(update={"id": s.id + "-again"}) for s in grp]

    async def run():
        assembler = GroupAssembler(stack, 2, timeout_s=10)
        a = await assembler.submit_many(grp)
        b = await assembler.submit_many(again)
        return a, b

    a, b = asyncio.run(run())
    assert all(r.group_size == 2 and not r.partial for r in a + b)


def test_a_new_group_waits_for_room_and_a_started_group_always_finishes(stack):
    rng = random.Random(4)
    first, second = make_group(0, 4, rng), make_group(1, 4, rng)

    async def run():
        # room for one group of 4: its first member reserves all four slots
        assembler = GroupAssembler(stack, 4, timeout_s=10, max_open_groups=8, max_samples=5)
        a = asyncio.ensure_future(assembler.submit(first[0]))
        await asyncio.sleep(0.01)
        b = asyncio.ensure_future(assembler.submit_many(second))  # a new group: no room yet
        await asyncio.sleep(0.05)
        assert assembler.waiting_for_room == 1 and assembler.held == 1
        assert not b.done()
        # the started group's later members are never refused nor kept waiting
        rest = await asyncio.wait_for(assembler.submit_many(first[1:]), 5)
        out_b = await asyncio.wait_for(b, 5)  # then the waiting group gets the room
        return assembler, [await a, *rest], out_b

    assembler, out_a, out_b = asyncio.run(run())
    for grp, out in ((first, out_a), (second, out_b)):
        want = expected(stack, grp)
        for r in out:
            same(r, want[r.id])
            assert not r.partial
    assert assembler.stats.waited_for_room == 1 and assembler.stats.rejected == 0
    assert assembler.held == 0 and assembler._room.slots == 0 and assembler._room.groups == 0


def test_no_room_within_the_admission_timeout_is_a_clear_refusal(stack):
    rng = random.Random(6)

    async def run():
        assembler = GroupAssembler(
            stack, 4, timeout_s=10, max_open_groups=1, admission_timeout_s=0.1
        )
        held = asyncio.ensure_future(assembler.submit(make_group(0, 1, rng)[0]))
        await asyncio.sleep(0.01)
        with pytest.raises(AssemblerFull, match="groups are open"):
            await assembler.submit(make_group(1, 1, rng)[0])
        with pytest.raises(ValueError, match="never fit"):
            await assembler.submit(make_group(2, 1, rng)[0], group_size=10**6)
        assert assembler.held == 1 and assembler.stats.rejected == 1
        waiting = asyncio.ensure_future(assembler.submit(make_group(3, 1, rng)[0]))
        await asyncio.sleep(0.01)
        await assembler.close()  # answers the open group; the waiter is told, not left hanging
        with pytest.raises(RuntimeError, match="closed"):
            await waiting
        return await held

    out = asyncio.run(run())
    assert out.partial is True


def test_a_group_of_one_is_complete_on_arrival(stack):
    rng = random.Random(7)
    grp = make_group(0, 3, rng)

    async def run():
        assembler = GroupAssembler(stack, 8, timeout_s=30)
        loop = asyncio.get_running_loop()
        start = loop.time()
        out = await asyncio.gather(
            *(assembler.submit(s, key=f"v{i}", group_size=1) for i, s in enumerate(grp))
        )
        return assembler, out, loop.time() - start

    assembler, out, took = asyncio.run(run())
    assert took < 5
    for s, r in zip(grp, out, strict=True):
        assert r.group_size == 1 and not r.partial and r.tier == 0
        assert r.reward == stack.score([s])[0].reward
    assert assembler.stats.groups_complete == 3 and assembler.open_groups == 0


def test_padding_copies_are_answered_at_once(stack):
    rng = random.Random(8)
    grp = make_group(0, 3, rng)
    other = make_group(9, 1, rng)[0].model_copy(update={"group": grp[0].group})

    async def run():
        assembler = GroupAssembler(stack, 3, timeout_s=30, extra="padding")
        loop = asyncio.get_running_loop()
        start = loop.time()
        out = await assembler.submit_many(grp)
        copy = await assembler.submit(grp[1])  # an identical member after the group completed
        alone = await assembler.submit(other)  # a different one: answered on its own
        return assembler, out, copy, alone, loop.time() - start

    assembler, out, copy, alone, took = asyncio.run(run())
    assert took < 5
    want = expected(stack, grp)
    for r in out:
        same(r, want[r.id])
    same(copy, want[grp[1].id])
    assert alone.group_size == 1 and alone.partial is True
    assert alone.reward == stack.score([other])[0].reward
    assert assembler.stats.padding_copies == 1 and assembler.stats.padding_alone == 1
    assert assembler.held == 0 and assembler._room.slots == 0


def test_a_caller_that_goes_away_leaves_its_sample_in_the_group(stack):
    rng = random.Random(5)
    grp = make_group(0, 4, rng)

    async def run():
        assembler = GroupAssembler(stack, 4, timeout_s=10)
        gone = asyncio.ensure_future(assembler.submit(grp[0]))
        await asyncio.sleep(0.01)
        gone.cancel()
        rest = await asyncio.gather(*(assembler.submit(s) for s in grp[1:]))
        assert gone.cancelled()
        return assembler, rest

    assembler, rest = asyncio.run(run())
    want = expected(stack, grp)
    for r in rest:
        same(r, want[r.id])
        assert r.group_size == 4 and not r.partial
    assert assembler.stats.abandoned == 1
    assert assembler.held == 0


class Recording(RewardSource):
    """Records the batches it is asked to score; 1.0 per sample."""

    batches: ClassVar[list[list[str]]] = []
    group_scoped = False

    def score(self, samples):
        type(self).batches.append([s.id for s in samples])
        return [Score.of(1.0) for _ in samples]


class WholeGroup(Recording):
    batches: ClassVar[list[list[str]]] = []
    group_scoped = True


def test_samples_are_scored_on_arrival_and_group_scoped_sources_once_per_group():
    # the classes as the stack imports them (pytest may import this file under another name)
    each = import_object("tests.core.test_groups:Recording")
    whole = import_object("tests.core.test_groups:WholeGroup")
    each.batches.clear()
    whole.batches.clear()
    stack = rewardplug.load_stack(
        {
            "sources": [
                {"name": "each", "use": "tests.core.test_groups:Recording"},
                {"name": "whole", "use": "tests.core.test_groups:WholeGroup"},
            ]
        }
    )
    grp = [Sample(id=f"s{i}", group="p", response=str(i)) for i in range(3)]

    async def run():
        assembler = GroupAssembler(stack, 3, timeout_s=10, max_wait_ms=1)
        first = asyncio.ensure_future(assembler.submit_many(grp[:2]))
        await asyncio.sleep(0.2)
        scored_before_complete = [list(b) for b in each.batches]
        assert whole.batches == []
        last = await assembler.submit(grp[2])
        return scored_before_complete, await first, last

    before, first, last = asyncio.run(run())
    assert before == [["s0", "s1"]]
    assert sorted(x for b in each.batches for x in b) == ["s0", "s1", "s2"]
    assert whole.batches == [["s0", "s1", "s2"]]
    assert all(r.reward == 2.0 for r in [*first, last])


class Exploding(RewardSource):
    def score(self, samples):
        raise RuntimeError("backend down")


def test_a_failing_source_gives_errors_in_rewards_not_exceptions():
    stack = rewardplug.load_stack(
        {"sources": [{"name": "bad", "use": "tests.core.test_groups:Exploding"}]}
    )

    async def run():
        assembler = GroupAssembler(stack, 2, timeout_s=10)
        return await assembler.submit_many([Sample(response="a"), Sample(response="b")])

    out = asyncio.run(run())
    assert [r.status for r in out] == ["error", "error"]
    assert "backend down" in out[0].reason


def test_bad_arguments_say_what_to_fix(stack):
    with pytest.raises(ValueError, match="group_size"):
        GroupAssembler(stack, 0)
    with pytest.raises(ValueError, match="timeout_s"):
        GroupAssembler(stack, 2, timeout_s=0)

    async def mismatched():
        await GroupAssembler(stack, 2).submit_many([Sample(response="a")], keys=["a", "b"])

    with pytest.raises(ValueError, match="1 samples"):
        asyncio.run(mismatched())


def test_an_assembler_belongs_to_one_event_loop(stack):
    assembler = GroupAssembler(stack, 1)
    asyncio.run(assembler.submit(Sample(response="x", metadata={"quality": 1.0})))
    with pytest.raises(RuntimeError, match="event loop"):
        asyncio.run(assembler.submit(Sample(response="y", metadata={"quality": 1.0})))
