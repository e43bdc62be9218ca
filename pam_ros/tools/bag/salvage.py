"""Read what a damaged MCAP still holds: its records streamed in file order, no footer needed.

A recorder that crashed or was killed leaves an MCAP file without its summary and footer, and
rosbags' reader, which starts from the footer, refuses such a file outright ("File end magic is
invalid"). `SalvageReader` reads the file as a live consumer would: the `mcap` library's
`StreamReader` goes through the records from the first byte, and reading stops at the first
record that cannot be read whole. Every message before it is returned; `damage` says, per file,
where reading stopped and why.

It offers the part of rosbags' `AnyReader` that the bag tool uses (`connections`,
`messages()`, `deserialize()`, `close()`), with rosbags `Connection`s built from the streamed
Schema and Channel records and a typestore built from their definitions (as AnyReader builds
one), so the tool runs on it unchanged. Messages come in file order (a recorder's write order),
not merged by time as from an indexed file.

One check is ours (`_ExactReads`): StreamReader takes a short read at the end of a cut file as
data, so a cut message would come back shorter and a cut chunk as a fragment; every read that
the file cannot fill raises `TruncatedRecord` instead, so only whole records are returned.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rosbags.interfaces import (
    Connection,
    ConnectionExtRosbag2,
    MessageDefinition,
    MessageDefinitionFormat,
)


class TruncatedRecord(Exception):
    """A read the file cannot fill: the file ends inside a record."""

    def __init__(self, offset: int, wanted: int, size: int) -> None:
        super().__init__(
            f"a record needs {wanted} bytes at byte {offset} but the file ends at byte {size}"
        )


class _ExactReads:
    """A binary file whose `read(n)` returns exactly n bytes or raises TruncatedRecord (without
    reading: a corrupt length cannot make it load the rest of a large file)."""

    def __init__(self, file) -> None:
        import os

        self._file = file
        self.size = os.fstat(file.fileno()).st_size
        self.position = 0

    def read(self, count: int = -1) -> bytes:
        if count is None or count < 0:
            count = self.size - self.position
        if self.position + count > self.size:
            raise TruncatedRecord(self.position, count, self.size)
        data = self._file.read(count)
        if len(data) != count:  # the file shrank under us
            raise TruncatedRecord(self.position, count, self.position + len(data))
        self.position += count
        return data


@dataclass(frozen=True)
class Damage:
    """Where reading one file stopped."""

    file: Path
    size: int  # bytes in the file
    good_until: int  # the last record read whole ends at this byte
    reason: str
    messages: int  # messages read from the file before it
    last_time_ns: int | None  # log time of the last of them


@dataclass
class _Channel:
    topic: str
    msgtype: str
    encoding: str
    metadata: dict
    msgdef: MessageDefinition


def _msgdef(schema) -> MessageDefinition:
    if schema is None:
        return MessageDefinition(MessageDefinitionFormat.NONE, "")
    text = bytes(schema.data).decode()
    if schema.encoding == "ros2msg":
        return MessageDefinition(MessageDefinitionFormat.MSG, text)
    if schema.encoding == "ros2idl":
        return MessageDefinition(MessageDefinitionFormat.IDL, text)
    return MessageDefinition(MessageDefinitionFormat.NONE, "")


def _qos(metadata: dict) -> list:
    from rosbags.rosbag2.metadata import parse_qos

    try:
        return parse_qos(metadata.get("offered_qos_profiles", ""))
    except Exception:  # an unreadable profile must not stop the salvage
        return []


class SalvageReader:
    """The readable prefix of MCAP `files` (a bag's files in order), as the bag tool reads it."""

    def __init__(self, files: list[Path], default_typestore) -> None:
        self.files = list(files)
        self.default_typestore = default_typestore
        self.connections: list[Connection] = []
        self.damage: list[Damage] = []
        self.typestore = None
        self._by_key: dict[tuple[str, str], Connection] = {}

    # ---- streaming -----------------------------------------------------------------------

    def _walk(self, damage: list[Damage] | None = None) -> Iterator[tuple[_Channel, int, bytes]]:
        """(channel, log time, data) of every message read whole, file after file; where a
        file stops before the end of its data section, a Damage is appended to `damage` (a file
        cut in its summary, after the DataEnd record, has lost no message)."""
        from mcap.records import Channel, DataEnd, Message, Schema
        from mcap.stream_reader import StreamReader

        for path in self.files:
            schemas, channels = {}, {}
            count, last_time = 0, None
            with path.open("rb") as file:
                exact = _ExactReads(file)
                records = iter(StreamReader(exact, validate_crcs=True).records)
                good_until, data_end = 0, False
                while True:
                    try:
                        record = next(records)
                    except StopIteration:
                        break
                    except Exception as exc:  # cut, corrupt, a bad CRC: stop this file here
                        if damage is not None and not data_end:
                            reason = str(exc) or type(exc).__name__
                            damage.append(
                                Damage(path, exact.size, good_until, reason, count, last_time)
                            )
                        break
                    good_until = exact.position
                    if isinstance(record, DataEnd):
                        data_end = True
                    elif isinstance(record, Schema):
                        schemas[record.id] = record
                    elif isinstance(record, Channel):
                        schema = schemas.get(record.schema_id)
                        channels[record.id] = _Channel(
                            record.topic,
                            schema.name if schema is not None else "",
                            record.message_encoding,
                            dict(record.metadata),
                            _msgdef(schema),
                        )
                    elif isinstance(record, Message) and record.channel_id in channels:
                        count += 1
                        last_time = record.log_time
                        yield channels[record.channel_id], record.log_time, record.data

    # ---- AnyReader's interface -----------------------------------------------------------

    def open(self) -> None:
        """One pass to learn the topics, their readable counts and where reading stops."""
        counts: Counter = Counter()
        found: dict[tuple[str, str], _Channel] = {}
        damage: list[Damage] = []
        for channel, _, _ in self._walk(damage):
            key = (channel.topic, channel.msgtype)
            found.setdefault(key, channel)
            counts[key] += 1
        self.damage = damage
        self.typestore = self._typestore(list(found.values()))
        for index, (key, channel) in enumerate(found.items(), start=1):
            digest = channel.metadata.get("topic_type_hash", "")
            if not digest:
                try:
                    digest = self.typestore.hash_rihs01(channel.msgtype)
                except Exception:
                    digest = ""
            connection = Connection(
                id=index,
                topic=channel.topic,
                msgtype=channel.msgtype,
                msgdef=channel.msgdef,
                digest=digest,
                msgcount=counts[key],
                ext=ConnectionExtRosbag2(channel.encoding, _qos(channel.metadata)),
                owner=self,
            )
            self.connections.append(connection)
            self._by_key[key] = connection

    def _typestore(self, channels: list[_Channel]):
        """The bag's own definitions, as AnyReader does; the default store where it has none."""
        from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore

        types: dict = {}
        defined = [c for c in channels if c.msgdef.format != MessageDefinitionFormat.NONE]
        for channel in defined:
            if channel.msgdef.format == MessageDefinitionFormat.MSG:
                types.update(get_types_from_msg(channel.msgdef.data, channel.msgtype))
            else:
                separator = "=" * 80 + "\n"
                for part in channel.msgdef.data.split(separator):
                    idl = part.split("\n", 1)[1] if part.startswith("IDL: ") else part
                    if idl.strip():
                        types.update(get_types_from_idl(idl))
        if not defined and self.default_typestore is not None:
            return self.default_typestore
        typestore = get_typestore(Stores.EMPTY)
        typestore.register(types)
        return typestore

    def messages(self, connections=()) -> Iterator[tuple[Connection, int, bytes]]:
        wanted = {c.id for c in connections} if connections else None
        for channel, log_time, data in self._walk():
            connection = self._by_key[(channel.topic, channel.msgtype)]
            if wanted is None or connection.id in wanted:
                yield connection, log_time, data

    def deserialize(self, raw: bytes, msgtype: str):
        return self.typestore.deserialize_cdr(raw, msgtype)

    def close(self) -> None:
        pass


def mcap_files(path: Path) -> list[Path]:
    """The MCAP files of a bag (folder or file), in the order metadata.yaml lists them."""
    if path.is_file():
        return [path] if path.suffix == ".mcap" else []
    listed: list[Path] = []
    try:
        import yaml

        info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        listed = [path / Path(name).name for name in info["relative_file_paths"]]
    except Exception:  # no or unreadable metadata.yaml (a killed recorder may leave none)
        pass
    listed = [p for p in listed if p.suffix == ".mcap" and p.is_file()]
    return listed or sorted(path.glob("*.mcap"))


def metadata_counts(path: Path) -> dict[str, int]:
    """Messages per topic that the bag's metadata.yaml records ({} where there is none)."""
    if not path.is_dir():
        return {}
    try:
        import yaml

        info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        counts: Counter = Counter()
        for entry in info["topics_with_message_count"]:
            counts[entry["topic_metadata"]["name"]] += int(entry["message_count"])
        return dict(counts)
    except Exception:
        return {}
