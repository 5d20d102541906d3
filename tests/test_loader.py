"""Each malformed-file case gets a clear error naming the file, the column and the problem."""

from __future__ import annotations

import pytest

from study.churn.data import RawDataError, read_table, resolve_source

MSNO = "waLDQMmcOu2jLDaV1ddDkgCrB/jl6sD66Xzs0Vqax1Y="
MSNO2 = "QA7uiXy8vIbUSPOkCf9RwQ3FsT8jVq2OxDr8zqa7bRQ="
TX_HEADER = (
    "msno,payment_method_id,payment_plan_days,plan_list_price,actual_amount_paid,"
    "is_auto_renew,transaction_date,membership_expire_date,is_cancel"
)
TX_ROW = f"{MSNO},41,30,129,129,1,20150930,20151101,0"


def write(tmp_path, name, text, mode="w"):
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


def test_a_valid_file_reads_with_kaggle_dtypes(tmp_path):
    df = read_table(write(tmp_path, "transactions.csv", f"{TX_HEADER}\n{TX_ROW}\n"))
    assert df.shape == (1, 9)
    assert df.transaction_date.iloc[0] == 20150930 and str(df.is_cancel.dtype) == "int64"


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("transactions.csv", "", r"transactions\.csv: the file is empty"),
        ("transactions.csv", f"{TX_HEADER}\n", r"transactions\.csv: no data rows"),
        (
            "transactions.csv",
            TX_HEADER.replace(",is_cancel", "") + "\n" + TX_ROW[:-2] + "\n",
            r"transactions\.csv: missing column\(s\) is_cancel",
        ),
        ("transactions.csv", TX_HEADER + ",coupon\n" + TX_ROW + ",1\n", r"unexpected column\(s\) coupon"),
        ("train.csv", f"is_churn,msno\n0,{MSNO}\n", r"train\.csv: columns in the wrong order"),
        (
            "transactions.csv",
            f"{TX_HEADER}\n{TX_ROW}\n{MSNO},41,thirty,129,129,1,20150930,20151101,0\n",
            r"transactions\.csv, column payment_plan_days: expected integers, found 'thirty' on line 3",
        ),
        (
            "transactions.csv",
            f"{TX_HEADER}\n{MSNO},41,30,129,129,1,20170231,20170331,0\n",
            r"transactions\.csv, column transaction_date: .*YYYYMMDD.*20170231",
        ),
        (
            "transactions.csv",
            f"{TX_HEADER}\n{MSNO},41,30,129,129,2,20170201,20170331,0\n",
            r"transactions\.csv, column is_auto_renew: .*isin.*2",
        ),
        (
            "transactions.csv",
            f"{TX_HEADER}\n{MSNO},41,-30,129,129,1,20170201,20170331,0\n",
            r"column payment_plan_days: .*greater_than_or_equal_to\(0\)",
        ),
        (
            "transactions.csv",
            f"{TX_HEADER}\n{TX_ROW},7\n",
            r"transactions\.csv: a row has 10 fields instead of 9 on line 2",
        ),
        ("train.csv", f"msno,is_churn\n{MSNO},0\n{MSNO},1\n", r"train\.csv, column .*msno.*unique"),
        ("train.csv", f"msno,is_churn\n{MSNO},3\n", r"train\.csv, column is_churn: .*isin"),
        ("train.csv", "msno,is_churn\nnot-an-id,0\n", r"train\.csv, column msno: .*44-character base64 msno"),
        ("train.csv", "msno,is_churn\n,0\n", r"train\.csv, column msno: 1 empty value"),
        (
            "members_v3.csv",
            f"msno,city,bd,gender,registered_via,registration_init_time\n{MSNO},1,0,robot,7,20110911\n",
            r"members_v3\.csv, column gender: .*isin.*robot",
        ),
        (
            "user_logs.csv",
            "msno,date,num_25,num_50,num_75,num_985,num_100,num_unq,total_secs\n"
            f"{MSNO},20150513,0,0,0,0,1,1,12.5\n{MSNO2},20150513,0,0,x,0,1,1,3\n",
            r"user_logs\.csv, column num_75: expected integers, found 'x' on line 3",
        ),
    ],
)
def test_malformed_files_get_clear_messages(tmp_path, name, text, expected):
    with pytest.raises(RawDataError, match=expected) as err:
        read_table(write(tmp_path, name, text))
    message = str(err.value)  # one line that starts with the file, not a validator's multi-line report
    assert message.startswith(name) and "\n" not in message and len(message) <= 300, message


def test_binary_and_badly_encoded_files(tmp_path):
    with pytest.raises(RawDataError, match=r"not a text CSV"):
        read_table(write(tmp_path, "train.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR"))
    with pytest.raises(RawDataError, match=r"not a text CSV .*UTF-16"):
        read_table(write(tmp_path, "train.csv", f"msno,is_churn\n{MSNO},0\n".encode("utf-16")))
    latin1 = f"msno,city,bd,gender,registered_via,registration_init_time\n{MSNO},1,0,f\xe9minin,7,20110911\n"
    with pytest.raises(RawDataError, match=r"members_v3\.csv: not UTF-8 encoded text on line 2"):
        read_table(write(tmp_path, "members_v3.csv", latin1.encode("latin-1")))


def test_unknown_file_name_needs_a_table_kind(tmp_path):
    p = write(tmp_path, "mine.csv", f"msno,is_churn\n{MSNO},0\n")
    with pytest.raises(RawDataError, match="unknown raw file"):
        read_table(p)
    assert len(read_table(p, table="train")) == 1


def test_a_folder_without_the_required_files_is_named(tmp_path):
    write(tmp_path, "train_v2.csv", f"msno,is_churn\n{MSNO},0\n")
    with pytest.raises(
        RawDataError, match=r"missing raw file\(s\) members_v3\.csv, transactions_v2\.csv, user_logs_v2\.csv"
    ):
        resolve_source(tmp_path)
