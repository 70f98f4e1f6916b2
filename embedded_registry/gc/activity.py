"""Where pushes are in flight: the grace period applies there only.

A push uploads blobs, then commits a manifest that names them. Between the two, its blobs are
referenced by nothing, and only the grace period keeps GC away from them. But the grace period
also keeps every blob of an image an operator has just deleted, for an hour by default. What
tells the two apart is on disk, for the bundled registry and for Distribution alike:

* an **upload session** (``_uploads/<uuid>``) written within the grace period is a push in
  flight in its repository;
* the **last commit** of a repository is the newest manifest event in it: a revision link
  written (a re-push touches it), a revision removed (its directory changes), a tag written or
  removed (the ``tags`` directory or a ``current/link``);
* a blob written, linked into a repository, or refreshed (a HEAD, GET or mount of it) **at or
  after** the last commit of a repository it belongs to may be part of a push whose manifest has
  not come yet. One written before it was part of a push that has finished: its manifest was
  committed, and perhaps deleted since.

So a young unreferenced blob is protected only when a repository it belongs to (by a ``_layers``
link or a manifest revision, deleted or not) has an upload session active within the grace
period, or has not committed anything since the blob was last written, linked or refreshed. A
blob no repository links is protected while any upload session is active (an upload publishes
its blob a moment before linking it). With no push activity, young unreferenced blobs go at once.

Under ``delete_untagged``, a young untagged manifest is kept only while its repository's last
commit is an untagged manifest (the children of an index are pushed before the index) or an
upload session is active there.
"""

from __future__ import annotations

from embedded_registry.gc.scan import RepoSnapshot, Snapshot


class PushActivity:
    """Push activity per repository of one snapshot, read lazily and once per repository.

    ``young`` is the grace cutoff (``now - grace``): nothing older than it is protected, and
    an upload session idle since before it is not a push in flight.
    """

    def __init__(self, snapshot: Snapshot, young: float) -> None:
        self.snapshot = snapshot
        self.young = young
        self._by_name = {repo.name: repo for repo in snapshot.repos}
        self._last_commit: dict[str, float] = {}
        self._last_tag: dict[str, float] = {}
        self._owners: dict[str, list[RepoSnapshot]] | None = None
        self._any_session: bool | None = None

    # -- per repository ------------------------------------------------------------------------
    def session_active(self, repo: RepoSnapshot) -> bool:
        """Whether an upload session of ``repo`` was written within the grace period."""
        return any(upload.last_activity > self.young for upload in repo.uploads)

    def any_session_active(self) -> bool:
        if self._any_session is None:
            self._any_session = any(self.session_active(r) for r in self.snapshot.repos)
        return self._any_session

    def last_commit(self, repo: RepoSnapshot) -> float:
        """The time of the newest manifest event of ``repo`` (0 when it never had one)."""
        cached = self._last_commit.get(repo.name)
        if cached is not None:
            return cached
        revisions = repo.path + "/_manifests/revisions"
        newest = max((st.mtime for st in repo.revisions.values()), default=0.0)
        for digest in repo.unlinked_revisions:
            algorithm, _, hex_part = digest.partition(":")
            st = self.snapshot.stat(f"{revisions}/{algorithm}/{hex_part}")
            if st is not None:
                newest = max(newest, st.mtime)
        recorded, tagged = self.snapshot.commit_events(repo)
        last_tag = max(self._tag_events(repo), tagged)
        self._last_tag[repo.name] = last_tag
        newest = max(newest, last_tag, recorded)
        self._last_commit[repo.name] = newest
        return newest

    def _tag_events(self, repo: RepoSnapshot) -> float:
        """The time of the ``tags`` directory (a tag removed); the times of the tag links
        are in :meth:`Snapshot.commit_events`."""
        st = self.snapshot.stat(repo.path + "/_manifests/tags")
        return st.mtime if st is not None else 0.0

    def untagged_push_in_flight(self, repo: RepoSnapshot) -> bool:
        """Whether young untagged manifests of ``repo`` may be children of an index to come:
        an upload session is active there, or its last commit is an untagged manifest."""
        if self.session_active(repo):
            return True
        last = self.last_commit(repo)
        if last <= self.young:
            return False
        newest_revision = max((st.mtime for st in repo.revisions.values()), default=0.0)
        return newest_revision >= last and newest_revision > self._last_tag[repo.name]

    # -- per blob --------------------------------------------------------------------------------
    def owners(self, digest: str) -> list[RepoSnapshot]:
        """The repositories a blob belongs to: a ``_layers`` link or a manifest revision."""
        if self._owners is None:
            owners: dict[str, list[RepoSnapshot]] = {}
            for repo in self.snapshot.repos:
                for d in {*repo.layer_links, *repo.revisions, *repo.unlinked_revisions}:
                    owners.setdefault(d, []).append(repo)
            self._owners = owners
        return self._owners.get(digest, [])

    def protects_blob(self, digest: str, newest: float) -> bool:
        """Whether an unreferenced blob last written, linked or refreshed at ``newest`` must
        stay: young, and a push may be in flight that will reference it."""
        if newest <= self.young:
            return False
        owners = self.owners(digest)
        if not owners:
            return self.any_session_active()
        return any(self.session_active(r) or newest >= self.last_commit(r) for r in owners)

    def protects_repo_link(self, repo: RepoSnapshot, link_mtime: float) -> bool:
        """Whether a young ``_layers`` link of ``repo`` must stay although its blob goes."""
        if link_mtime <= self.young:
            return False
        return self.session_active(repo) or link_mtime >= self.last_commit(repo)
