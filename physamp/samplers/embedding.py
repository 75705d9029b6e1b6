"""Minor embedding with chains as a dimod composite around a structured sampler.

A problem whose interaction graph is not a subgraph of the hardware graph is
placed with *chains*: each logical variable becomes a connected set of qubits held
together by strong ferromagnetic couplers (``-chain_strength`` in dimod's SPIN
signs), and is read back by majority vote over its chain. This is dwave-system's
``EmbeddingComposite`` / ``LazyFixedEmbeddingComposite`` idea, written for
physamp's needs:

- the embedding is found once (by ``minorminer``, seeded with
  ``derive_seed(seed, "embedding") % 2**31`` for a reproducible embedding) and kept,
  or given and checked against the child's graph;
- the two halves of a call are public, so a caller can check what is *actually
  programmed* before submitting it (ranges, a dry run) and submit it its own way
  (the ``dwave`` backend splits reads over several calls)::

      composite = ChainEmbeddingComposite(structured_sampler, seed=0)
      target = composite.embed_bqm(bqm, chain_strength=2.0)   # what the QPU gets
      raw = structured_sampler.sample(target, num_reads=100)
      logical = composite.unembed_sampleset(raw, bqm)        # majority vote

  or, all at once, ``composite.sample(bqm, chain_strength=2.0, num_reads=100)``.

The unembedded SampleSet carries a ``chain_break_fraction`` field (the fraction of
chains broken in each read) and ``info["embedding_context"]`` (chain strength,
maximum chain length, mean chain-break fraction). The chain couplers are part of
the physical problem: a Boltzmann sampler of the target BQM samples the logical
BQM's distribution only as far as the chains are strong and unbroken.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import dimod
import numpy as np

from physamp.samplers.base import check_positive
from physamp.samplers.dimod_io import check_structured
from physamp.seeding import derive_seed

__all__ = ["ChainEmbeddingComposite", "EmbeddingError", "default_chain_strength", "chain_break_fraction"]


class EmbeddingError(ValueError):
    """No embedding was found, or an embedding does not fit the problem or the child's graph."""


def default_chain_strength(bqm, j_range: Sequence[float] | None = None) -> float:
    """``2 max |J|`` of ``bqm`` (1.0 if it has no nonzero coupling), capped at ``|j_range[0]|``
    (the strongest ferromagnetic coupling the device can program) when ``j_range`` is given."""
    quad = np.fromiter(bqm.quadratic.values(), dtype=np.float64, count=bqm.num_interactions)
    max_j = float(np.abs(quad).max(initial=0.0))
    strength = 2.0 * max_j if max_j > 0 else 1.0
    if j_range is not None:
        strength = min(strength, abs(float(j_range[0])))
    return strength


def chain_break_fraction(sampleset, num_reads: int | None = None) -> float:
    """Mean of an unembedded sampleset's ``chain_break_fraction`` over its reads (rows
    repeated by ``num_occurrences``), over the first ``num_reads`` reads if given."""
    record = sampleset.record
    per_read = np.repeat(np.asarray(record.chain_break_fraction, dtype=np.float64), record.num_occurrences)
    if num_reads is not None:
        per_read = per_read[:num_reads]
    return float(per_read.mean()) if per_read.size else 0.0


class ChainEmbeddingComposite(dimod.ComposedSampler):
    """Embed a logical BQM into a structured child sampler with chains; unembed by majority vote.

    Args:
        child: a structured dimod sampler (``.nodelist``, ``.edgelist``, ``.sample``),
            e.g. ``DWaveSampler``, ``MockDWaveSampler`` or
            ``dimod.StructureComposite(sampler, nodes, edges)``.
        embedding: ``{variable: [qubits]}``; None finds one with minorminer on first use
            (from the first BQM's interaction graph) and keeps it.
        chain_strength: chain coupler magnitude; None uses :func:`default_chain_strength`
            of each BQM, capped by the child's ``j_range`` property if it has one.
        seed: seeds minorminer (``derive_seed(seed, "embedding") % 2**31``); None: unseeded.
        embedding_parameters: further keyword arguments of ``minorminer.find_embedding``.

    ``embedding`` may be reassigned (None: find a new one on the next call). Per-call
    parameters of :meth:`sample`: ``chain_strength`` and the child's parameters.
    """

    def __init__(
        self,
        child,
        embedding: Mapping[Hashable, Sequence[Hashable]] | None = None,
        *,
        chain_strength: float | None = None,
        seed: int | None = None,
        embedding_parameters: Mapping[str, Any] | None = None,
    ) -> None:
        check_structured(
            child,
            "the child",
            "Wrap an unstructured sampler in dimod.StructureComposite(sampler, nodes, edges) "
            "to give it a graph.",
        )
        if chain_strength is not None:
            check_positive(chain_strength, "chain_strength")
        self._child = child
        self._adjacency: dict[Hashable, set] | None = None
        self._structure = None  # dwave.embedding.EmbeddedStructure of the current embedding
        self.chain_strength = chain_strength
        self.seed = seed
        self.embedding_parameters = dict(embedding_parameters or {})
        self.embedding = embedding

    # --- dimod's composite interface ---------------------------------------------------
    @property
    def children(self) -> list:
        return [self._child]

    @property
    def parameters(self) -> dict[str, list]:
        return {**self._child.parameters, "chain_strength": []}

    @property
    def properties(self) -> dict[str, Any]:
        return {"child_properties": dict(self._child.properties), "max_chain_length": self.max_chain_length}

    # --- the embedding -----------------------------------------------------------------
    @property
    def embedding(self) -> dict[Hashable, list] | None:
        """``{variable: [qubits]}`` (None until one is given or found)."""
        return self._embedding

    @embedding.setter
    def embedding(self, embedding: Mapping[Hashable, Sequence[Hashable]] | None) -> None:
        self._embedding = None if embedding is None else {k: list(v) for k, v in embedding.items()}
        self._structure = None

    @property
    def max_chain_length(self) -> int | None:
        """Length of the longest chain (None while there is no embedding)."""
        if not self._embedding:
            return None
        return max(len(c) for c in self._embedding.values())

    @property
    def target_adjacency(self) -> dict[Hashable, set]:
        """The child's graph as ``{qubit: {neighbours}}`` (built once)."""
        if self._adjacency is None:
            adjacency: dict[Hashable, set] = {q: set() for q in self._child.nodelist}
            for a, b in self._child.edgelist:
                adjacency[a].add(b)
                adjacency[b].add(a)
            self._adjacency = adjacency
        return self._adjacency

    def find_embedding(self, bqm) -> dict[Hashable, list]:
        """Find an embedding of ``bqm``'s interaction graph with minorminer (does not keep it)."""
        import minorminer
        import networkx as nx

        source = nx.Graph()
        source.add_nodes_from(bqm.variables)
        source.add_edges_from(bqm.quadratic)
        target = nx.Graph()
        target.add_nodes_from(self._child.nodelist)
        target.add_edges_from(self._child.edgelist)
        kw = dict(self.embedding_parameters)
        if self.seed is not None:
            kw.setdefault("random_seed", derive_seed(int(self.seed), "embedding") % 2**31)
        found = minorminer.find_embedding(source, target, **kw)
        if len(found) != bqm.num_variables:
            raise EmbeddingError(
                f"minorminer found no embedding of the {bqm.num_variables}-variable interaction "
                f"graph ({bqm.num_interactions} couplings) in the child's graph "
                f"({len(self._child.nodelist)} qubits); use a smaller or sparser problem, or pass "
                "embedding=..."
            )
        return {k: list(v) for k, v in found.items()}

    def ensure_embedding(self, bqm) -> dict[Hashable, list]:
        """The kept embedding (found for ``bqm`` on first use), checked against ``bqm``'s
        variables and the child's qubits.

        Raises:
            EmbeddingError: none found, a variable without a chain, or a qubit absent
                from the child's graph (a broken or missing qubit).
        """
        if self._embedding is None:
            self.embedding = self.find_embedding(bqm)
        emb = self._embedding
        assert emb is not None  # given, or found just above
        missing = [v for v in bqm.variables if v not in emb]
        if missing:
            raise EmbeddingError(f"the embedding has no chain for variable(s) {missing[:20]}")
        empty = [v for v, chain in emb.items() if not chain]
        if empty:
            raise EmbeddingError(f"the embedding has empty chains for variable(s) {empty[:20]}")
        nodes = self.target_adjacency
        bad = sorted({q for chain in emb.values() for q in chain if q not in nodes}, key=str)
        if bad:
            raise EmbeddingError(
                f"the embedding uses qubit(s) {bad[:20]} absent from the child sampler's graph"
            )
        return emb

    def _embedded_structure(self, bqm):
        from dwave.embedding import EmbeddedStructure
        from dwave.embedding.utils import adjacency_to_edges

        emb = self.ensure_embedding(bqm)
        if self._structure is None:
            try:
                self._structure = EmbeddedStructure(adjacency_to_edges(self.target_adjacency), emb)
            except Exception as err:  # a disconnected or overlapping chain
                raise EmbeddingError(
                    f"the embedding is not valid in the child's graph ({type(err).__name__}: {err}); "
                    "set embedding = None to find a new one"
                ) from err
        return self._structure

    # --- the two halves of a call ----------------------------------------------------------
    def resolve_chain_strength(self, bqm, chain_strength: float | None = None) -> float:
        """The chain strength a call uses: ``chain_strength``, else the composite's, else
        :func:`default_chain_strength` capped by the child's ``j_range``."""
        cs = self.chain_strength if chain_strength is None else chain_strength
        if cs is None:
            cs = default_chain_strength(bqm, self._child.properties.get("j_range"))
        return check_positive(cs, "chain_strength")

    def embed_bqm(self, bqm, chain_strength: float | None = None):
        """The target BQM (on the child's qubits) that carries ``bqm``: what is programmed.

        Linear biases are spread evenly over each chain, each coupling over the couplers
        between two chains, and every chain edge gets ``-chain_strength``.

        Raises:
            EmbeddingError: as :meth:`ensure_embedding`, or the embedding has no coupler
                for some coupling of ``bqm``.
        """
        from dwave.embedding import embed_bqm

        structure = self._embedded_structure(bqm)
        cs = self.resolve_chain_strength(bqm, chain_strength)
        try:
            target = embed_bqm(bqm, structure, chain_strength=cs)
        except Exception as err:  # a coupling with no coupler between its chains
            raise EmbeddingError(
                f"the embedding does not carry this problem ({type(err).__name__}: {err}); "
                "set embedding = None to find a new one"
            ) from err
        # dwave.embedding relabels length-1 chains without looking at the couplers: check them
        adjacency = self.target_adjacency
        absent = [(p, q) for p, q in target.quadratic if q not in adjacency[p]]
        if absent:
            assert self._embedding is not None  # the BQM was embedded with it
            owner = {q: v for v, chain in self._embedding.items() for q in chain}
            bad = {frozenset((owner[p], owner[q])) for p, q in absent}
            pairs = [(u, v) for u, v in bqm.quadratic if frozenset((u, v)) in bad]
            raise EmbeddingError(
                f"the embedding does not carry this problem: no coupler between the chains of "
                f"{pairs[:20]} ({len(pairs)} coupling(s)); set embedding = None to find a new one"
            )
        return target

    def unembed_sampleset(self, target_sampleset, bqm):
        """The logical samples of ``target_sampleset`` (samples of :meth:`embed_bqm`'s target
        BQM): each variable is its chain's majority vote (ties broken at random), and the
        ``chain_break_fraction`` field holds the fraction of broken chains of each read.

        The target sampleset is not modified.
        """
        from dwave.embedding import unembed_sampleset
        from dwave.embedding.chain_breaks import majority_vote

        emb = self.ensure_embedding(bqm)
        # a plain dict, not the EmbeddedStructure: dwave's shortcut for length-1 chains
        # relabels the target sampleset in place, which a caller may still need
        return unembed_sampleset(
            target_sampleset, emb, bqm, chain_break_method=majority_vote, chain_break_fraction=True
        )

    def embedding_context(self, chain_strength: float, logical=None, num_reads: int | None = None) -> dict:
        """``{"chain_strength", "max_chain_length", "chain_break_method"[, "chain_break_fraction"]}``
        of a call (the mean chain-break fraction when the unembedded ``logical`` is given)."""
        out: dict[str, Any] = {
            "chain_strength": float(chain_strength),
            "max_chain_length": self.max_chain_length,
            "chain_break_method": "majority_vote",
        }
        if logical is not None:
            out["chain_break_fraction"] = chain_break_fraction(logical, num_reads)
        return out

    # --- all at once -----------------------------------------------------------------------
    def sample(self, bqm, chain_strength: float | None = None, **parameters: Any):
        """Embed ``bqm``, sample the child with ``parameters``, unembed by majority vote.

        Returns the logical SampleSet; its ``info`` is the child's plus
        ``embedding_context`` (see :meth:`embedding_context`).
        """
        unknown = sorted(set(parameters) - set(self._child.parameters))
        if unknown:
            raise TypeError(
                f"{type(self._child).__name__} has no parameter(s) {unknown}; its parameters are: "
                + (", ".join(sorted(self._child.parameters)) or "(none)")
            )
        cs = self.resolve_chain_strength(bqm, chain_strength)
        target = self.embed_bqm(bqm, cs)
        raw = self._child.sample(target, **parameters)
        logical = self.unembed_sampleset(raw, bqm)
        logical.info["embedding_context"] = self.embedding_context(cs, logical)
        return logical
