# Per-kernel CUDA times of PyTorch eager BertModel (MiniLM-L3 config, fp32, TF32 off) at 32x128.
import torch
from torch.profiler import profile, ProfilerActivity
from transformers import BertConfig, BertModel
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
cfg = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=3, num_attention_heads=12,
                 intermediate_size=1536, max_position_embeddings=512, hidden_act="gelu")
m = BertModel(cfg).cuda().eval()
print("attn impl:", getattr(m.config, "_attn_implementation", "?"))
ids = torch.randint(0, 4096, (32, 128), device="cuda"); mask = torch.ones(32, 128, dtype=torch.int64, device="cuda")
with torch.no_grad():
    for _ in range(5): m(input_ids=ids, attention_mask=mask)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as p:
        for _ in range(10): m(input_ids=ids, attention_mask=mask)
        torch.cuda.synchronize()
print(p.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=90))
