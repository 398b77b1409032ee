"""A multi-worker run that loses a worker (issue 14): the survivor's error
names the lost worker, and rerunning every worker resumes (a non-chief
worker used to start again at step 0 while the chief resumed)."""
import json

import pytest
import tensorflow as tf

import cli
from simclr_tf import checkpoints, data, distribute, train
from simclr_tf.config import (Config, DataConfig, ModelConfig, RuntimeConfig,
                              TrainConfig)

WORKERS = ['10.0.0.1:2222', '10.0.0.2:2222']
# What the survivor got here when worker 1 was killed mid-run (both forms).
SOCKET_CLOSED = (
    'Graph execution error:\n\nCollective ops is aborted by: Socket closed\n'
    'Additional GRPC error information from remote target /job:worker/'
    'replica:0/task:1 while calling /tensorflow.WorkerService/RecvBuf:\n'
    ':UNKNOWN:Error received from peer  {grpc_status:14, grpc_message:'
    '"Socket closed"}\nThe error could be from a previous operation. Restart '
    'your program to reset.')
HEARTBEATS = (
    'Collective ops is aborted by: Error reported from /job:worker/task:1: '
    'The following tasks are unhealthy (stopped sending heartbeats):\n'
    '/job:worker/replica:0/task:1\nThe tasks have crashed.')


@pytest.mark.parametrize('text,cause', [
    (SOCKET_CLOSED, 'Socket closed'),
    (HEARTBEATS, 'Error reported from /job:worker/task:1: The following '
     'tasks are unhealthy (stopped sending heartbeats)')])
def test_the_lost_worker_is_named(monkeypatch, text, cause):
  monkeypatch.setenv('TF_CONFIG', json.dumps(
      {'cluster': {'worker': WORKERS}, 'task': {'type': 'worker',
                                                'index': 0}}))
  error = tf.errors.UnavailableError(None, None, text)
  multi = RuntimeConfig(strategy='multi_worker')
  assert distribute.lost_worker_message(error, multi) == (
      f"--strategy=multi_worker: worker 1 (10.0.0.2:2222) of TF_CONFIG's "
      f'cluster.worker was lost ({cause}). Rerun every worker with the same '
      'command to resume from the newest checkpoint.')
  assert distribute.lost_worker_message(error, RuntimeConfig()) is None
  assert distribute.lost_worker_message(
      tf.errors.UnavailableError(None, None, 'no such host'), multi) is None


def test_a_non_chief_worker_resumes_where_the_chief_does(tmp_path):
  npz = cli.write_tiny_npz(tmp_path)
  cfg = Config(data=DataConfig(dataset=f'npz:{npz}'), mode='train',
               model=ModelConfig(resnet_depth=18, width_multiplier=0.125,
                                 image_size=32, proj_out_dim=16,
                                 num_classes=3),
               train=TrainConfig(model_dir=str(tmp_path / 'run'),
                                 train_steps=10, train_batch_size=8))
  strategy, source = tf.distribute.get_strategy(), data.get_source(cfg.data)
  chief = train.Trainer(cfg, strategy, source, chief=True)
  chief.optimizer.iterations.assign(7)
  chief.manager.save(checkpoint_number=7)
  choice = checkpoints.choose(cfg)
  assert choice.role == 'resume'
  for is_chief in (False, True):
    worker = train.Trainer(cfg, strategy, source, chief=is_chief,
                           start=choice)
    assert worker.restore() == 7, is_chief
